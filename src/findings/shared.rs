//! Faults shared by several responders: losses that several hosts suffer on the *same* probes
//! point upstream of all of them (the sender's side, a shared link or switch); losses that
//! coincide no more than chance allows are each host's own (its link or the host itself).
//! Pure: reads which probes each responder left unanswered.
//!
//! How: every lost probe has a *signature*, the set of responders that lost it. Under
//! independence, a signature S of several hosts turns up on about n·Π p_i probes (p_i each
//! host's loss rate, n the probes all of S were there for). A signature seen far more often
//! than that (binomial tail probability below [`SIGNIFICANT_LOG10_P`], at least
//! [`MIN_SHARED`] probes) is a group: a fault upstream of exactly those hosts. Signatures are
//! tested smallest first, and a larger one is tested against the groups already found (a trunk
//! fault behind which one host also has a lossy access link makes signature {trunk hosts} ∪
//! {that host} common too, but no more common than the two faults together give by chance).
//! Then every lost probe is put down to the groups and single hosts that make up its signature:
//! "h3, h4 and h5 lost the same 41 probes", "h4 alone lost 37".
//!
//! A probe's signature holds only the responders there for it (from their first answer to the
//! run's end or their restart): a fault shared by all is found from the probes all were there
//! for; before a late joiner came, its part looks like the others' own.

use std::collections::BTreeMap;

/// A group needs a tail probability below 10^this to count (the many signatures of a big LAN
/// are tested at once; this keeps chance groups out).
pub(crate) const SIGNIFICANT_LOG10_P: f64 = -6.0;
/// ... and at least this many probes lost together.
pub(crate) const MIN_SHARED: u64 = 3;

/// One responder's losses, as the input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LossSet<'a> {
    /// How reports name it.
    pub name: String,
    /// The first probe it was there for (its first answer).
    pub first_seq: u64,
    /// One past the last probe it was there for (the run's end, or its restart, or where its
    /// record of lost probes filled up).
    pub end_seq: u64,
    /// The probes it left unanswered, as ascending runs `start..end`; those outside the window
    /// are ignored.
    pub lost: &'a [(u64, u64)],
}

/// Several responders that lost the same probes more often than chance allows.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedLoss {
    /// Their names, in input order.
    pub members: Vec<String>,
    /// Every responder of the run is a member: the fault is at the sender's side.
    pub everyone: bool,
    /// Probes all members lost that are put down to this fault.
    pub probes: u64,
    /// Probes with exactly this signature, and how many independent losses would give.
    pub observed: u64,
    pub expected: f64,
    /// log10 of the probability of `observed` or more under independence.
    pub log10_p: f64,
    /// What this host itself knows caused it, when it does (set by the findings, not here).
    pub known: Option<KnownCause>,
}

/// A cause of a loss shared by every responder that this host knows of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownCause {
    /// This host's socket buffer dropped this many acks (SO_RXQ_OVFL).
    LocalDrops(u64),
    /// The sender fell behind the rate and sent in bursts.
    SenderBehind,
}

/// What the analysis found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedFaults {
    pub groups: Vec<SharedLoss>,
    /// Per responder with losses (input order): the probes it lost on its own, outside any group.
    pub alone: Vec<(String, u64)>,
    /// The losses made more than [`MAX_SIGNATURES`] signatures: not analysed (its cost grows
    /// with their square), and said so. The responders with losses, then.
    pub skipped: Option<usize>,
}

/// Distinct signatures the analysis takes on: each candidate is tested against the others, so
/// more would cost seconds to minutes (a LAN's real faults make a few dozen; thousands come from
/// independent losses of very many responders, or forged ones).
pub(crate) const MAX_SIGNATURES: usize = 2_048;

struct Group {
    members: Vec<usize>,
    /// Loss rate of "all members lost": their probes in common over the probes they shared.
    p: f64,
    found: usize,
}

/// Finds the groups in `hosts`' losses.
pub(crate) fn analyse(hosts: &[LossSet]) -> SharedFaults {
    let window = |h: &LossSet| h.end_seq.saturating_sub(h.first_seq);
    // The signature of every lost probe, run by run: sweep the runs' ends in order, the
    // signature constant between two of them (memory by runs, not by probes).
    let mut edges: Vec<(u64, bool, usize)> = Vec::new();
    let mut lost = vec![0u64; hosts.len()];
    for (i, h) in hosts.iter().enumerate() {
        for &(a, b) in h.lost {
            let (a, b) = (a.max(h.first_seq), b.min(h.end_seq));
            if a < b {
                edges.push((a, true, i));
                edges.push((b, false, i));
                lost[i] += b - a;
            }
        }
    }
    edges.sort_unstable();
    let mut signatures: BTreeMap<Vec<usize>, u64> = BTreeMap::new();
    let mut active: std::collections::BTreeSet<usize> = Default::default();
    let mut at = 0u64;
    for run in edges.chunk_by(|a, b| a.0 == b.0) {
        let pos = run[0].0;
        if !active.is_empty() && pos > at {
            let sig: Vec<usize> = active.iter().copied().collect();
            *signatures.entry(sig).or_default() += pos - at;
            if signatures.len() > MAX_SIGNATURES {
                let with_losses = lost.iter().filter(|&&l| l > 0).count();
                return SharedFaults { skipped: Some(with_losses), ..SharedFaults::default() };
            }
        }
        for &(_, start, i) in run {
            if start {
                active.insert(i);
            } else {
                active.remove(&i);
            }
        }
        at = pos;
    }
    let p: Vec<f64> = hosts.iter().zip(&lost).map(|(h, &l)| l as f64 / window(h).max(1) as f64).collect();
    // Probes all of `members` were there for, and how many they all lost.
    let span = |members: &[usize]| {
        let first = members.iter().map(|&i| hosts[i].first_seq).max().unwrap_or(0);
        let end = members.iter().map(|&i| hosts[i].end_seq).min().unwrap_or(0);
        end.saturating_sub(first)
    };
    let all_lost = |members: &[usize]| -> u64 {
        signatures.iter().filter(|(s, _)| members.iter().all(|m| s.binary_search(m).is_ok())).map(|(_, c)| c).sum()
    };

    let mut candidates: Vec<(&Vec<usize>, u64)> =
        signatures.iter().filter(|(s, _)| s.len() > 1).map(|(s, &c)| (s, c)).collect();
    candidates.sort_by_key(|&(s, c)| (s.len(), std::cmp::Reverse(c)));
    let mut groups: Vec<Group> = Vec::new();
    let mut found: Vec<SharedLoss> = Vec::new();
    for (sig, count) in candidates {
        if count < MIN_SHARED {
            continue;
        }
        let parts = partition(sig, &groups);
        let n = span(sig);
        let chance: f64 = parts
            .iter()
            .map(|part| match part {
                Part::Group(g) => groups[*g].p,
                Part::Host(i) => p[*i],
            })
            .product();
        let expected = n as f64 * chance;
        let log10_p = log10_binomial_tail(n, chance, count);
        if log10_p < SIGNIFICANT_LOG10_P {
            let members = sig.clone();
            groups.push(Group { p: all_lost(&members) as f64 / n.max(1) as f64, members, found: found.len() });
            found.push(SharedLoss {
                members: sig.iter().map(|&i| hosts[i].name.clone()).collect(),
                everyone: sig.len() == hosts.len(),
                probes: 0,
                observed: count,
                expected,
                log10_p,
                known: None,
            });
        }
    }
    // Put every lost probe down to the groups and single hosts its signature is made of.
    let mut alone = vec![0u64; hosts.len()];
    for (sig, &count) in &signatures {
        for part in partition(sig, &groups) {
            match part {
                Part::Group(g) => found[groups[g].found].probes += count,
                Part::Host(i) => alone[i] += count,
            }
        }
    }
    let alone = hosts.iter().zip(alone).filter(|&(_, a)| a > 0).map(|(h, a)| (h.name.clone(), a)).collect();
    SharedFaults { groups: found, alone, skipped: None }
}

enum Part {
    Group(usize),
    Host(usize),
}

/// `sig` as groups already found (largest first, disjoint) and the hosts left over. Signatures
/// and members are ascending, so membership is a binary search.
fn partition(sig: &[usize], groups: &[Group]) -> Vec<Part> {
    let mut left: Vec<usize> = sig.to_vec();
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&g| std::cmp::Reverse(groups[g].members.len()));
    let mut parts = Vec::new();
    for g in order {
        let members = &groups[g].members;
        if members.len() <= left.len() && members.iter().all(|m| left.binary_search(m).is_ok()) {
            left.retain(|m| members.binary_search(m).is_err());
            parts.push(Part::Group(g));
        }
    }
    parts.extend(left.into_iter().map(Part::Host));
    parts
}

/// log10 of P(X ≥ k) for X ~ Binomial(n, p); 0 (probability about 1) when k is not above the
/// mean. Summed from the k-th term down the tail, in logs, so 10^-300 and below stay exact
/// enough to print.
pub(crate) fn log10_binomial_tail(n: u64, p: f64, k: u64) -> f64 {
    if k == 0 || (k as f64) <= n as f64 * p {
        return 0.0;
    }
    if k > n || p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return 0.0;
    }
    let ln_choose: f64 = (0..k).map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln()).sum();
    let ln_first = ln_choose + k as f64 * p.ln() + (n - k) as f64 * (-p).ln_1p();
    // Terms after the k-th, relative to it: each is the one before × (n−j)/(j+1) × p/(1−p),
    // falling once past the mean.
    let odds = p / (1.0 - p);
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for j in k..n {
        term *= (n - j) as f64 / (j + 1) as f64 * odds;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    ((ln_first + sum.ln()) / std::f64::consts::LN_10).min(0.0)
}

#[cfg(test)]
mod tests;
