//! Every finding of a run in words: the one place the sentences are made. The terminal, JSON
//! (`findings`) and report.html (its *Findings* section, from the folder's `report.json`) all
//! print these, in this order, so no output says more or less than another.

use serde::Serialize;

use super::querier;
use crate::findings::{Findings, Note, Path};

/// Outages listed one by one before the rest is summed up (outages.csv lists them all).
pub(crate) const MAX_OUTAGES: usize = 20;

/// What a finding is about, so a reader (or a program reading the JSON) can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Topic {
    /// A responder restarted during the run.
    Restart,
    /// A stretch of probes a responder did not answer.
    Outage,
    /// How the run went on this host: the sender, its socket, what it ignored.
    Prober,
    /// Several responders, or all of them, at once: shared losses, silence, names.
    Responders,
    /// One responder's own loss or host.
    Responder,
    /// The membership querier of the LAN.
    Querier,
    /// With --hosts: the expected hosts, one line each when not ok.
    Host,
    /// With --groups: which responder reached which group.
    Groups,
}

/// One finding in words.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub(crate) struct Said {
    pub topic: Topic,
    pub text: String,
}

fn said(topic: Topic, text: String) -> Said {
    Said { topic, text }
}

/// Ranges of groups listed in a line before the rest is counted (groups.csv lists them all).
const MAX_GROUP_RANGES: usize = 8;

/// With `--groups`: a line for the groups probed, a line per responder that missed or lost
/// some (the ones that reached every group without loss share one line), and the groups that no
/// responder reached.
fn groups(f: &Findings) -> Vec<Said> {
    let Some(g) = &f.groups else { return Vec::new() };
    let n = g.groups.len();
    let (all, _) = g.ranges(&(0..n).collect::<Vec<_>>(), 3);
    let mut out = vec![said(
        Topic::Groups,
        format!("{n} groups probed in turn ({}), {:.3} probes/s each", all.join(", "), g.per_group_rate),
    )];
    let label = |r: &crate::findings::groups::GroupReach| {
        if r.responder.name.is_empty() {
            format!("({})", &r.responder.id.to_string()[..8])
        } else {
            r.responder.name.clone()
        }
    };
    let listed = |idx: &[usize]| {
        let (shown, left) = g.ranges(idx, MAX_GROUP_RANGES);
        let more = if left > 0 { format!(" and {left} more ranges (groups.csv)") } else { String::new() };
        format!("{}{more}", shown.join(", "))
    };
    let clean: Vec<String> =
        g.responders.iter().filter(|r| r.missing().is_empty() && r.lossy().is_empty()).map(label).collect();
    if !clean.is_empty() {
        out.push(said(Topic::Groups, format!("{}: all {n} groups reached, none lossy", clean.join(", "))));
    }
    for r in &g.responders {
        let (missing, lossy) = (r.missing(), r.lossy());
        if !missing.is_empty() {
            out.push(said(
                Topic::Groups,
                format!(
                    "{}: {} of {n} groups; missing {} ({} groups)",
                    label(r),
                    r.reached(),
                    listed(&missing),
                    missing.len()
                ),
            ));
        }
        if !lossy.is_empty() {
            out.push(said(
                Topic::Groups,
                format!("{}: lost probes on {} groups: {}", label(r), lossy.len(), listed(&lossy)),
            ));
        }
    }
    if g.untracked > 0 {
        out.push(said(
            Topic::Groups,
            format!(
                "{} more responders answered, beyond what the run tracks per group ({} responder-group pairs): counted in the table, not per group",
                g.untracked,
                crate::stats::MAX_GROUP_TALLIES
            ),
        ));
    }
    for r in &g.responders {
        out.extend(join_leave_line(&label(r), r).map(|t| said(Topic::Groups, t)));
    }
    let none = g.reached_by_none();
    if !none.is_empty() && g.responders.len() > 1 {
        out.push(said(
            Topic::Groups,
            format!(
                "no responder reached {} ({} groups): the network does not forward them here, or this host's route to them leaves by another interface",
                listed(&none),
                none.len()
            ),
        ));
    }
    out
}

/// With a responder's `--churn`: its join and leave delays over the groups (RFC 3918), in one
/// line; what has no delay is counted apart, never given a number.
fn join_leave_line(label: &str, r: &crate::findings::groups::GroupReach) -> Option<String> {
    use crate::findings::join_leave::{JoinLeaveSummary, Spread};
    let s = JoinLeaveSummary::of(r)?;
    let ms = |ns: u64| format!("{:.3}", ns as f64 / 1e6);
    let spread = |what: &str, x: Option<Spread>| match x {
        Some(x) => format!(
            "{what} delay over {} p50 {} ms, p99 {} ms, max {} ms",
            crate::output::counted(x.groups as u64, "group", "groups"),
            ms(x.p50_ns),
            ms(x.p99_ns),
            ms(x.max_ns)
        ),
        None => format!("no {what} delay measured"),
    };
    let mut parts = vec![spread("join", s.join)];
    if s.syscall_clock {
        parts.push("leave delays not measured (the responder has no CAP_NET_RAW: joins timed from its system call, which precedes the report by two or more kernel ticks, 8-16 ms at HZ=250: they read that much longer)".into());
    } else {
        parts.push(spread("leave", s.leave));
    }
    if s.flooded > 0 {
        parts.push(format!(
            "{} groups were still arriving when left and joined again, so they have no join or leave delay (the LAN floods them, with no snooping or no querier; or its leave delay exceeds half the --churn period)",
            s.flooded
        ));
    }
    if s.started_after > 0 {
        parts.push(format!(
            "{} groups were joined before their probes started (this run began after the responder), so their first join has no delay",
            s.started_after
        ));
    }
    if s.never_arrived > 0 {
        parts.push(format!("{} groups never arrived after a join", s.never_arrived));
    }
    if s.churned > 0 {
        parts.push(format!(
            "{} groups were left and joined again (--churn): their probes sent meanwhile count as lost",
            s.churned
        ));
    }
    Some(format!("{label}: {} ({} joins seen; groups.csv has each group's)", parts.join("; "), s.joins))
}

/// Every finding of `f`, in the order the terminal prints them: restarts, outages, notes, then
/// what the verdicts of --hosts add.
pub(crate) fn all(f: &Findings) -> Vec<Said> {
    let mut out = run(f);
    out.extend(diagnosis(f));
    out
}

/// The findings under the table: restarts, outages, notes.
pub(crate) fn run(f: &Findings) -> Vec<Said> {
    let mut out = groups(f);
    out.extend(f.restarts.iter().map(|r| {
        said(
            Topic::Restart,
            format!(
                "{} restarted: id {} answered up to probe {}, id {} from probe {}; {} probes unanswered in between",
                r.name, r.before, r.last_seq, r.after, r.first_seq, r.unanswered
            ),
        )
    }));
    for o in f.outages.iter().take(MAX_OUTAGES) {
        let end = o.end.map_or("the end of the run".to_string(), |e| format!("{:.3} s", e.as_secs_f64()));
        out.push(said(
            Topic::Outage,
            format!(
                "outage: {} from {:.3} s to {end}, {} probes unanswered",
                o.name,
                o.start.as_secs_f64(),
                o.probes_lost
            ),
        ));
    }
    if f.outages.len() > MAX_OUTAGES {
        out.push(said(
            Topic::Outage,
            format!("… and {} more outages (outages.csv lists them all)", f.outages.len() - MAX_OUTAGES),
        ));
    }
    out.extend(f.notes.iter().map(|n| said(note_topic(n), note_line(n))));
    out
}

/// The findings a verdict table is followed by (empty without --hosts).
pub(crate) fn diagnosis(f: &Findings) -> Vec<Said> {
    let Some(d) = &f.diagnosis else { return Vec::new() };
    let mut out =
        vec![said(Topic::Host, format!("{} of {} expected hosts ok", d.hosts.len() - d.failing(), d.hosts.len()))];
    let missing: Vec<String> = d.missing_on_multicast().map(|h| h.to_string()).collect();
    if !missing.is_empty() {
        out.push(said(Topic::Host, format!("missing on multicast: {}", missing.join(", "))));
    }
    if !d.unexpected.is_empty() {
        let list: Vec<String> = d.unexpected.iter().map(|(n, a)| format!("{n} ({a})")).collect();
        out.push(said(Topic::Host, format!("unexpected responders: {}", list.join(", "))));
    }
    for h in &d.hosts {
        let advice = h.advice_text();
        if !advice.is_empty() {
            out.push(said(Topic::Host, format!("{}: {advice}", h.host)));
        }
    }
    out.extend(querier::diagnosis_lines(f).into_iter().map(|l| said(Topic::Querier, l)));
    out
}

fn note_topic(n: &Note) -> Topic {
    match n {
        Note::ForeignAcks(_)
        | Note::Invalid(_)
        | Note::Forged(_)
        | Note::LocalDrops(_)
        | Note::SendErrors(_)
        | Note::AcksDroppedHere(_) => Topic::Prober,
        Note::ProbesDroppedAtHost(_) => Topic::Responder,
        Note::SenderFellShort(_) => Topic::Prober,
        Note::RateLimited(_)
        | Note::SharedName { .. }
        | Note::SharedAddress { .. }
        | Note::ListedTwice(_)
        | Note::NothingAnswered(_)
        | Note::NoneOnTheGroup
        | Note::SharedLoss(_)
        | Note::IndependentLoss(_)
        | Note::SharedLossSkipped { .. }
        | Note::ResponderFlood(_) => Topic::Responders,
        Note::ClockStepped(_) => Topic::Prober,
        Note::AloneLoss { .. } | Note::HostDrops { .. } | Note::KeyMismatch { .. } => Topic::Responder,
        Note::Querier(_) | Note::QuerierSilent(_) => Topic::Querier,
    }
}

/// One note in words.
fn note_line(n: &Note) -> String {
    match n {
        Note::ForeignAcks(k) => format!("{k} acks of other sessions ignored"),
        Note::Invalid(k) => format!("{k} invalid datagrams ignored"),
        Note::Forged(k) => format!("{k} acks without a valid key tag rejected"),
        Note::RateLimited(k) => format!("{k} probes rate-limited by responders: not loss, see the LIM column"),
        Note::LocalDrops(k) => {
            format!("{k} acks dropped by this host's socket buffer: local, not network loss; raise --rcvbuf")
        }
        Note::SendErrors(k) => format!("{k} probes failed to send"),
        Note::SharedName { name, addrs } => {
            let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
            format!(
                "several responders are named {name} ({}): give each its own with `respond --name`",
                list.join(", ")
            )
        }
        Note::KeyMismatch { source, counts } => {
            format!("key mismatch with {source}: {}", crate::findings::diagnosis::key_mismatch_text(counts))
        }
        Note::ListedTwice(t) => format!(
            "{} is {} again: one responder, {}, answered the unicast probes to both, so it is judged once, as {}; list each host once",
            t.host, t.as_host, t.name, t.as_host
        ),
        Note::SharedAddress { addr, names } => format!(
            "{} answered from one address, {addr}: one host running {} responders, which counts once among the hosts (--min-hosts)",
            and_list(names),
            names.len()
        ),
        Note::SenderFellShort(s) => {
            let how = if s.cut_by_deadline {
                format!("--duration ended the run with {} of the {} probes asked not sent", s.asked - s.sent, s.asked)
            } else {
                format!("sending took {:.1} s instead of {:.1} s", s.span.as_secs_f64(), s.planned.as_secs_f64())
            };
            format!(
                "sent {} probes at {:.0}/s of the {:.0}/s asked: this host cannot send faster ({how}); what the responders lost in the bursts it sent is this host's limit, not the network's",
                s.sent, s.achieved_per_s, s.asked_per_s
            )
        }
        Note::NothingAnswered(s) => {
            let key = if s.keyed { "the same --key on both sides" } else { "no --key on the responders, or --key here too" };
            format!(
                "no responder answered; check each of these: responders run on group {} port {}; --iface is the LAN's interface; no firewall drops the probes on the responders (UDP port {}) or the acks here (a stateful one does: `mcprobe doctor --role prober`, and --ack-port gives one port to open); --ttl {} reaches them; {key}",
                s.group.ip(),
                s.group.port(),
                s.group.port(),
                s.ttl
            )
        }
        Note::SharedLoss(g) => shared_line(g),
        Note::AloneLoss { name, probes } => {
            format!("{name} alone lost {probes} probe{}: its own link or host", if *probes == 1 { "" } else { "s" })
        }
        Note::IndependentLoss(names) => format!(
            "{} lost probes independently (no more of the same probes than chance gives): each one's own link or host",
            and_list(names)
        ),
        Note::SharedLossSkipped { responders } => format!(
            "{responders} responders lost probes in too many different patterns to compare: whether they share a fault is not said"
        ),
        Note::ResponderFlood(u) => {
            let from: Vec<String> = u.from.iter().map(|a| a.to_string()).collect();
            format!(
                "responder flood: {}{} responder ids beyond the {} this run tracks answered ({} acks, from {}): counted, not in the table; without --key any host that sees the probes can answer with made-up ids, so use --key",
                if u.ids_at_least { "at least " } else { "" },
                u.ids,
                crate::stats::MAX_RESPONDERS,
                u.acks,
                from.join(", ")
            )
        }
        Note::ClockStepped(c) if c.corrected == 0 => format!(
            "{} acks were read back before their probe left by this host's clock (it stepped): they have no RTT, and their probes count as unanswered",
            c.excluded
        ),
        Note::ClockStepped(c) => {
            let mut line = format!(
                "this host's clock stepped {} by {:.3} s while probes were out: {} RTTs measured across it without the step",
                if c.largest_ns < 0 { "back" } else { "forward" },
                c.largest_ns.unsigned_abs() as f64 / 1e9,
                c.corrected
            );
            if c.excluded > 0 {
                line += &format!(
                    "; {} acks read back before their probe left have no RTT (their probes count as unanswered)",
                    c.excluded
                );
            }
            line
        }
        Note::HostDrops { name, path, host, network, unreported } => {
            let name = format!("{name}{}", if *path == Path::Unicast { " (unicast)" } else { "" });
            let forward = host + network + unreported;
            // Only some acks carry the drop count: what was lost after the latest is either's.
            let after = "where no report of its host's drops covers them yet: its host's or the network's, not yet told";
            match (*host, *unreported) {
                (0, u) => format!("{name}: {u} of its {forward} probes lost forward were lost {after}; {network} were lost by the network"),
                (h, 0) => format!("{name}: {h} of its {forward} probes lost forward were dropped by its own host (socket buffer full: raise `respond --rcvbuf` or lower the rate), {network} by the network"),
                (h, u) => format!("{name}: {h} of its {forward} probes lost forward were dropped by its own host (socket buffer full: raise `respond --rcvbuf` or lower the rate), {network} by the network; {u} were lost {after}"),
            }
        }
        Note::AcksDroppedHere(d) => super::host_path::acks_line(d),
        Note::ProbesDroppedAtHost(d) => super::host_path::probes_line(d),
        Note::Querier(q) => querier::seen_line(q),
        Note::QuerierSilent(s) => querier::silence_line(s),
        Note::NoneOnTheGroup => "no expected host answered on the group, though every one answered unicast on this port: each host's line gives the causes that fit".to_string(),
    }
}

/// "a, b and c".
fn and_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// "h3, h4 and h5 lost the same 41 probes: a fault upstream of all three …".
fn shared_line(g: &crate::findings::SharedLoss) -> String {
    let n = g.members.len();
    let all = match n {
        2 => "both".to_string(),
        3 => "all three".to_string(),
        _ => format!("all {n}"),
    };
    let where_ = match (g.everyone, g.known) {
        (true, Some(crate::findings::KnownCause::LocalDrops(n))) => format!(
            "this host's socket buffer dropped {n} acks (SO_RXQ_OVFL), so the loss is this host's, not the network's; raise --rcvbuf or lower the rate"
        ),
        (true, Some(crate::findings::KnownCause::SenderBehind)) => {
            "this host fell behind the rate and sent in bursts (see above): its limit, not a fault upstream".to_string()
        }
        (true, None) => {
            format!("a fault at the sender's side, upstream of {all} responders (the prober's host or link)")
        }
        (false, _) => format!("a fault upstream of {all}, on a link or switch they share"),
    };
    // Below 1e-300 a probability says nothing more (and a double could not hold it).
    let p = if g.log10_p.is_finite() && g.log10_p > -300.0 {
        format!("p < 1e{}", g.log10_p.ceil() as i64)
    } else {
        "p < 1e-300".to_string()
    };
    format!(
        "{} lost the same {} probes: {where_} ({} with exactly these, {:.2} expected if independent, {p})",
        and_list(&g.members),
        g.probes,
        g.observed,
        g.expected
    )
}
