//! Every resource `serve` holds is bounded by construction; this module names the bounds (the
//! manual's table lists them with these values) and checks the descriptor budget they add up to.
//!
//! Per target, at most [`WINDOWS_IN_FLIGHT`] windows exist at once: the one sending and the one
//! before it, which waits up to `timeout` for its late acks (so probing never pauses for that
//! wait). Two windows never send at the same time. Each window is one thread plus the engine's
//! sender, receiver and, with CAP_NET_RAW, its ack tap, so a target costs at most 1 (its loop) +
//! 2 × 4 + 1 (querier watch) = 10 threads, and `serve` at most `MAX_TARGETS × 10 + 3` (main,
//! HTTP, its blocking helper), plus one per `[[watch]]` entry.
//!
//! With `--groups` (`groups` in a `[[target]]`), a target sends to all its groups from its one
//! multicast socket: no thread or descriptor per group, so the figures above hold. The groups of
//! all targets together are at most [`MAX_TARGET_GROUPS`]. A window's engine keeps a 48-byte
//! tally per (responder, group) (`stats::GroupTally`), at most `stats::MAX_GROUP_TALLIES` of
//! them (48 MiB), so the windows in flight hold at most
//! `WINDOWS_IN_FLIGHT × 48 B × min(groups × responders, MAX_GROUP_TALLIES)`
//! (2 × 48 B × 1000 × 5 = 480 kB for 1000 groups and 5 responders); the state keeps 16 bytes per
//! series for the group figures, and with `--group-series` a bit per group (512 B per series at
//! 4096 groups). The exposition adds, per such target, 1 series (`mcprobe_groups`) and 2 per
//! multicast responder series (`mcprobe_groups_reached`, `mcprobe_groups_missed_total`), not one
//! per group; `--group-series` adds 1 per target and at most `--max-series` per target
//! (responders × groups, else none for that target).
//!
//! `[[watch]]` entries: at most [`MAX_WATCHES`], one thread each; their groups together at most
//! [`MAX_WATCH_GROUPS`] (a socket each); per group at most `max_sources` sources followed
//! ([`MAX_SOURCES`] at most); per entry at most `--max-series` streams (group, port, source).
//! A stream has at most 12 series, a group 2 of its own and 2 for its `source="other"`, so an
//! entry exports at most `12 × --max-series + 4 × groups` series.

use std::time::Duration;

use anyhow::{bail, Result};

/// Targets in one `serve`.
pub(crate) const MAX_TARGETS: usize = 64;
/// Expected hosts (`hosts`, `--hosts`) per target: each has a unicast socket in every window.
pub(crate) const MAX_HOSTS: usize = 256;
/// The shortest probe interval: 10 000 multicast probes a second per target. A continuous
/// monitor has no use for more, and every probe open for its acks holds memory for `timeout`.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_micros(100);
/// Probes a second one target may send, its unicast probes (one per host per interval)
/// included.
pub(crate) const MAX_TARGET_RATE: f64 = 10_000.0;
/// Probes a second all targets together may send: what one sender thread keeps on schedule on
/// a small machine (a loopback send costs ~4 µs; 2 vCPUs carry ~50 000 probes/s with their acks).
pub(crate) const MAX_TOTAL_RATE: f64 = 50_000.0;
/// The shortest and longest `window`.
pub(crate) const MIN_WINDOW: Duration = Duration::from_millis(100);
pub(crate) const MAX_WINDOW: Duration = Duration::from_secs(3600);
/// Windows a target has at once: the one sending and the one waiting for its late acks.
pub(crate) const WINDOWS_IN_FLIGHT: usize = 2;
/// A target's overruns are logged at most once in this period (each is counted in
/// `mcprobe_window_overruns_total`).
pub(crate) const OVERRUN_LOG_PERIOD: Duration = Duration::from_secs(600);

/// Groups of all targets together (`--groups`, `groups` in `[[target]]` tables): as many as one
/// `--groups` list may hold (`cli::MAX_GROUPS`, checked in config's tests).
pub(crate) const MAX_TARGET_GROUPS: usize = 4096;

/// `[[watch]]` entries in one `serve`: one thread each.
pub(crate) const MAX_WATCHES: usize = 16;
/// Groups (group and port) of all `[[watch]]` entries together: one socket each.
pub(crate) const MAX_WATCH_GROUPS: usize = 4096;
/// Sources followed per watched group (`max_sources`), and its default; the datagrams of more
/// are summed into `source="other"`.
pub(crate) const MAX_SOURCES: usize = 16;
pub(crate) const DEFAULT_SOURCES: usize = 4;

/// Descriptors of the `[[watch]]` entries: a socket per group and an epoll per entry.
pub(crate) fn watch_descriptors(groups_per_entry: impl IntoIterator<Item = usize>) -> u64 {
    groups_per_entry.into_iter().map(|g| g as u64 + 1).sum()
}

/// File descriptors `serve` may need at most: per window, the multicast socket and one per
/// host, each twice (the sender's clone); per target, the querier watch's raw socket; the HTTP
/// side's connections and listener; and what the process holds anyway (stdio, the runtime).
pub(crate) fn descriptors_needed(hosts_per_target: impl IntoIterator<Item = usize>, http: usize) -> u64 {
    let targets: u64 = hosts_per_target.into_iter().map(|h| (WINDOWS_IN_FLIGHT * 2 * (1 + h) + 1) as u64).sum();
    targets + http as u64 + 64
}

/// Makes sure the descriptors fit: raises the soft limit towards the hard one when they do not
/// (as Go programs do at start), else refuses with the numbers and the way to raise it.
pub(crate) fn ensure_descriptors(needed: u64) -> Result<()> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return Ok(()) };
    if needed <= soft {
        return Ok(());
    }
    if needed <= hard && setrlimit(Resource::RLIMIT_NOFILE, needed, hard).is_ok() {
        return Ok(());
    }
    bail!(
        "these targets need up to {needed} file descriptors and the limit is {soft} (hard {hard}): \
         fewer targets or hosts, or raise it (ulimit -n, or LimitNOFILE= in the unit)"
    )
}
