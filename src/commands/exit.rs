//! Exit codes, decided in one place for every command (the README's table lists them).

use crate::findings::{Findings, Miss, Thresholds, Verdict};

/// The run completed and every threshold given was met.
pub const OK: i32 = 0;
/// A threshold was not met, an expected host is not ok, or nothing answered.
pub const THRESHOLD: i32 = 1;
/// Usage or environment error (`main` maps every `Err` to it).
pub const USAGE: i32 = 2;
/// With --hosts (and in `mesh`): some host gets unicast probes but not multicast ones.
pub const MULTICAST_BROKEN: i32 = 3;
/// A second Ctrl-C: out at once, without reports.
pub const INTERRUPTED_TWICE: i32 = 130;

/// The exit code of a probing run, with a line for stderr for each threshold missed.
/// Multicast broken where unicast works (3) takes precedence over anything else (1).
pub(crate) fn of_run(found: &Findings, t: Thresholds) -> (i32, Vec<String>) {
    let misses = found.misses(t);
    let lines: Vec<String> = misses.iter().filter_map(miss_line).collect();
    let code = if found.diagnosis.as_ref().is_some_and(|d| d.multicast_broken()) {
        MULTICAST_BROKEN
    } else if found.diagnosis.as_ref().is_some_and(|d| d.failing() > 0) || !misses.is_empty() {
        THRESHOLD
    } else {
        OK
    };
    (code, lines)
}

/// The line a missed threshold gets on stderr (`None` when the table already says it).
fn miss_line(m: &Miss) -> Option<String> {
    Some(match m {
        Miss::Loss { name, addr, loss_pct, max_pct } => {
            format!("mcprobe: {name} ({addr}) lost {loss_pct:.3}% > --max-loss {max_pct}")
        }
        Miss::TooFew { answered, min } => format!("mcprobe: {answered} responders answered < --min-responders {min}"),
        Miss::TooFewHosts { hosts, min } => {
            format!(
                "mcprobe: responders answered from {} < --min-hosts {min}",
                crate::output::counted(*hosts as u64, "host", "hosts")
            )
        }
        // The table's closing lines already say what to check.
        Miss::NobodyAnswered => return None,
    })
}

/// `mesh`: like a probing run with --hosts, judged by the peers' verdicts only.
pub(crate) fn of_mesh(verdicts: impl IntoIterator<Item = Verdict>) -> i32 {
    let verdicts: Vec<Verdict> = verdicts.into_iter().collect();
    if verdicts.contains(&Verdict::MulticastLost) {
        MULTICAST_BROKEN
    } else if verdicts.iter().any(|v| *v != Verdict::Ok) {
        THRESHOLD
    } else {
        OK
    }
}

/// `max-rate`: the weakest responder's rate against `--min-rate`; nothing answered is a miss.
pub(crate) fn of_max_rate(weakest: Option<(&str, u64)>, min_rate: Option<f64>) -> (i32, Vec<String>) {
    match (weakest, min_rate) {
        (None, _) => (THRESHOLD, Vec::new()),
        (Some((name, rate)), Some(min)) if (rate as f64) < min => {
            (THRESHOLD, vec![format!("mcprobe: the weakest responder ({name}) reached {rate}/s < --min-rate {min}")])
        }
        _ => (OK, Vec::new()),
    }
}

/// The exit code once the results are printed: a report folder that could not be written is an
/// environment error (2) whatever the run found; its reason goes to stderr.
pub(crate) fn with_folder(code: i32, folder_error: Option<&anyhow::Error>) -> i32 {
    match folder_error {
        Some(e) => {
            eprintln!("mcprobe: error: {e:#}");
            USAGE
        }
        None => code,
    }
}
