//! Synthetic loss patterns with a seeded random source: faults placed on known hosts, the
//! analysis must name exactly those groups and put every probe down to the right place.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const N: u64 = 5000;

/// Losses of `hosts` hosts over N probes: `faults` are (members, loss rate), each drawing its
/// own independent probes; a host loses a probe when any fault it is behind does.
fn losses(hosts: usize, faults: &[(&[usize], f64)], seed: u64) -> Vec<Vec<u64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut lost = vec![Vec::new(); hosts];
    for seq in 0..N {
        let mut hit = vec![false; hosts];
        for (members, rate) in faults {
            if rng.random::<f64>() < *rate {
                members.iter().for_each(|&m| hit[m] = true);
            }
        }
        for (h, l) in hit.iter().zip(&mut lost) {
            if *h {
                l.push(seq);
            }
        }
    }
    lost
}

/// Probe numbers, ascending, as the runs stats keeps.
fn ranges(seqs: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &s in seqs {
        match out.last_mut() {
            Some((_, end)) if *end == s => *end += 1,
            _ => out.push((s, s + 1)),
        }
    }
    out
}

fn as_ranges(lost: &[Vec<u64>]) -> Vec<Vec<(u64, u64)>> {
    lost.iter().map(|l| ranges(l)).collect()
}

fn sets(lost: &[Vec<(u64, u64)>]) -> Vec<LossSet<'_>> {
    lost.iter()
        .enumerate()
        .map(|(i, l)| LossSet { name: format!("h{}", i + 1), first_seq: 0, end_seq: N, lost: l })
        .collect()
}

/// Probes every one of `members` lost.
fn common(lost: &[Vec<u64>], members: &[usize]) -> u64 {
    lost[members[0]].iter().filter(|s| members.iter().all(|&m| lost[m].contains(s))).count() as u64
}

fn names(g: &SharedLoss) -> Vec<&str> {
    g.members.iter().map(String::as_str).collect()
}

#[test]
fn a_lossy_trunk_is_shared_by_the_hosts_behind_it_and_an_access_link_is_its_hosts_alone() {
    // h1, h2 before the trunk; h3, h4, h5 behind it (2 %); everyone 0.5 % of their own, h4 3 %.
    let faults: &[(&[usize], f64)] =
        &[(&[2, 3, 4], 0.02), (&[0], 0.005), (&[1], 0.005), (&[2], 0.005), (&[3], 0.035), (&[4], 0.005)];
    for seed in 0..20 {
        let lost = losses(5, faults, seed);
        let f = analyse(&sets(&as_ranges(&lost)));
        assert_eq!(f.groups.len(), 1, "seed {seed}: {f:#?}");
        let g = &f.groups[0];
        assert_eq!(names(g), ["h3", "h4", "h5"], "seed {seed}");
        assert!(!g.everyone);
        assert_eq!(g.probes, common(&lost, &[2, 3, 4]), "seed {seed}");
        assert!(g.expected < 1.0 && g.log10_p < -20.0, "seed {seed}: {g:?}");
        let alone: BTreeMap<&str, u64> = f.alone.iter().map(|(n, a)| (n.as_str(), *a)).collect();
        assert_eq!(alone["h4"], lost[3].len() as u64 - g.probes, "seed {seed}");
        assert_eq!(alone.get("h1").copied().unwrap_or(0), lost[0].len() as u64, "seed {seed}");
        assert!(alone["h4"] > 3 * alone.get("h5").copied().unwrap_or(0), "seed {seed}: {alone:?}");
    }
}

#[test]
fn independent_losses_make_no_group() {
    let faults: &[(&[usize], f64)] = &[(&[0], 0.03), (&[1], 0.03), (&[2], 0.05), (&[3], 0.2)];
    for seed in 0..20 {
        let lost = losses(4, faults, seed);
        let f = analyse(&sets(&as_ranges(&lost)));
        assert!(f.groups.is_empty(), "seed {seed}: {f:#?}");
        let total: u64 = f.alone.iter().map(|(_, a)| a).sum();
        assert_eq!(total, lost.iter().map(|l| l.len() as u64).sum::<u64>());
    }
}

#[test]
fn a_fault_at_the_sender_is_everyones_and_nested_faults_are_both_found() {
    // 1 % lost by all four (the sender's side), 2 % by h3 and h4 (a trunk).
    let faults: &[(&[usize], f64)] = &[(&[0, 1, 2, 3], 0.01), (&[2, 3], 0.02), (&[0], 0.01), (&[3], 0.01)];
    for seed in 0..10 {
        let lost = losses(4, faults, seed);
        let f = analyse(&sets(&as_ranges(&lost)));
        let mut found: Vec<Vec<&str>> = f.groups.iter().map(names).collect();
        found.sort();
        assert_eq!(found, [vec!["h1", "h2", "h3", "h4"], vec!["h3", "h4"]], "seed {seed}: {f:#?}");
        let all = f.groups.iter().find(|g| g.everyone).unwrap();
        assert_eq!(all.probes, common(&lost, &[0, 1, 2, 3]), "seed {seed}");
        let trunk = f.groups.iter().find(|g| !g.everyone).unwrap();
        assert_eq!(trunk.probes, common(&lost, &[2, 3]) - all.probes, "seed {seed}");
    }
}

#[test]
fn only_probes_inside_each_hosts_window_count() {
    // h2 joined at probe 2500: what it "lost" before is not loss. The fault of all three is
    // found from the probes all three were there for.
    let lost = losses(3, &[(&[0, 1, 2], 0.02), (&[1], 0.3), (&[2], 0.3)], 7);
    let r = as_ranges(&lost);
    let mut s = sets(&r);
    s[1].first_seq = 2500;
    let f = analyse(&s);
    assert_eq!(f.groups.len(), 1, "{f:#?}");
    assert_eq!(names(&f.groups[0]), ["h1", "h2", "h3"]);
    let in_all = lost[0].iter().filter(|&&q| q >= 2500 && lost[1].contains(&q) && lost[2].contains(&q));
    assert_eq!(f.groups[0].probes, in_all.count() as u64);
    let h2_alone = f.alone.iter().find(|(n, _)| n == "h2").map_or(0, |a| a.1);
    let h2_in_window = lost[1].iter().filter(|&&q| q >= 2500).count() as u64;
    assert_eq!(h2_alone + f.groups[0].probes, h2_in_window);
}

#[test]
fn two_probes_in_common_are_not_a_group() {
    let (a, b) = (ranges(&[10, 20, 4000]), ranges(&[10, 20, 300]));
    let s = [
        LossSet { name: "a".into(), first_seq: 0, end_seq: N, lost: &a },
        LossSet { name: "b".into(), first_seq: 0, end_seq: N, lost: &b },
    ];
    let f = analyse(&s);
    assert!(f.groups.is_empty());
    assert_eq!(f.alone, [("a".to_string(), 3), ("b".to_string(), 3)]);
}

#[test]
fn binomial_tail_matches_a_direct_sum() {
    // P(X >= 8), X ~ B(10, 1/2) = 56/1024.
    assert!((log10_binomial_tail(10, 0.5, 8) - (56.0f64 / 1024.0).log10()).abs() < 1e-9);
    let direct = |n: u64, p: f64, k: u64| -> f64 {
        let mut c = 1.0f64; // C(n, 0)
        let mut total = 0.0;
        for j in 0..=n {
            if j >= k {
                total += c * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32);
            }
            c = c * (n - j) as f64 / (j + 1) as f64;
        }
        total.log10()
    };
    for (n, p, k) in [(200, 0.01, 6), (300, 0.05, 30), (100, 0.001, 3)] {
        let (a, b) = (log10_binomial_tail(n, p, k), direct(n, p, k));
        assert!((a - b).abs() < 1e-6, "B({n}, {p}) >= {k}: {a} vs {b}");
    }
    // Far in the tail it stays finite: 40 of 5000 at 1e-6 each.
    let deep = log10_binomial_tail(5000, 1e-6, 40);
    assert!((deep - -140.02).abs() < 0.1, "{deep}"); // ≈ 0.005^40 / 40!
    assert_eq!(log10_binomial_tail(5000, 0.01, 50), 0.0);
}

#[test]
fn long_silences_cost_their_runs_not_their_probes() {
    // 1 000 responders silent for a million probes each, from staggered starts: the sweep
    // finds one signature per start (nested), not a billion (probe, host) pairs.
    let lost: Vec<Vec<(u64, u64)>> = (0..1000u64).map(|i| vec![(i * 10, 1_000_000)]).collect();
    let s: Vec<LossSet> = lost
        .iter()
        .enumerate()
        .map(|(i, l)| LossSet { name: format!("f{i}"), first_seq: 0, end_seq: 1_000_000, lost: l })
        .collect();
    let f = analyse(&s);
    assert_eq!(f.skipped, None);
    // Every lost probe of every host is put down somewhere, once.
    let put: u64 = f.groups.iter().map(|g| g.probes * g.members.len() as u64).sum::<u64>()
        + f.alone.iter().map(|a| a.1).sum::<u64>();
    assert_eq!(put, lost.iter().map(|l| l[0].1 - l[0].0).sum::<u64>());
}

#[test]
fn too_many_signatures_are_said_not_analysed() {
    // Every probe lost by a different pair of hosts: more signatures than the analysis takes on.
    let hosts = 100usize;
    let mut lost = vec![Vec::new(); hosts];
    let mut seq = 0;
    for a in 0..hosts {
        for b in a + 1..hosts {
            lost[a].push(seq);
            lost[b].push(seq);
            seq += 2;
        }
    }
    let r = as_ranges(&lost);
    let f = analyse(&sets(&r));
    assert!(seq / 2 > MAX_SIGNATURES as u64);
    assert_eq!(f.skipped, Some(hosts));
    assert!(f.groups.is_empty() && f.alone.is_empty());
}
