//! `meta.json`: what a report folder's run was (who probed what, how, when), so a report can say
//! what was run and several folders can be merged. Every file of a run carries its `run_id`, the
//! run's session id as 16 hex digits.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::run::Outcome;
use crate::stats::format_id;

/// The file name, beside the CSVs.
pub(crate) const FILE: &str = "meta.json";
/// Bumped when a field changes meaning; readers refuse newer formats.
pub(crate) const FORMAT: u32 = 1;

/// One run's metadata. Times are UTC; `start_unix_ms` stays below 2^53 so JSON tools read it
/// exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunMeta {
    pub format: u32,
    pub run_id: String,
    pub mcprobe_version: String,
    /// The command line, program name first.
    pub arguments: Vec<String>,
    pub prober_host: String,
    /// The interface's address the probes left from, when known.
    pub prober_address: Option<IpAddr>,
    pub group: IpAddr,
    pub port: u16,
    pub interface: Option<String>,
    pub rate_per_s: f64,
    pub size_bytes: usize,
    pub ttl: u32,
    pub start_utc: String,
    pub start_unix_ms: u64,
    pub duration_s: f64,
    pub probes_sent: u64,
    pub report_interval_s: f64,
    pub timeout_s: f64,
    /// `--hosts`, when given.
    pub expected_hosts: Vec<IpAddr>,
    /// Stopped by Ctrl-C before the last probe.
    pub interrupted: bool,
    /// The files this run wrote into the folder (meta.json aside).
    pub files: Vec<String>,
    /// The name the prober gave itself (`mesh --name`), for the merged matrix's rows.
    #[serde(default)]
    pub prober_name: Option<String>,
    /// Loss was counted from each responder's first answer (`mesh`): the merged matrix counts it
    /// the same way (`loss_after_first_pct`).
    #[serde(default)]
    pub loss_from_first_answer: bool,
}

impl RunMeta {
    /// The metadata of a finished run. `host` is this machine's name, `args` the command line.
    pub(crate) fn of(o: &Outcome, host: String, args: Vec<String>) -> Self {
        let s = &o.settings;
        let start_ns = o.run.start_ns().unwrap_or(0);
        let start = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(start_ns);
        RunMeta {
            format: FORMAT,
            run_id: run_id(o),
            mcprobe_version: env!("CARGO_PKG_VERSION").to_string(),
            arguments: redact(args),
            prober_host: host,
            prober_address: s.source,
            group: s.group,
            port: s.port,
            interface: s.interface.clone(),
            rate_per_s: 1.0 / s.interval.as_secs_f64(),
            size_bytes: s.size,
            ttl: s.ttl,
            start_utc: humantime::format_rfc3339_millis(start).to_string(),
            start_unix_ms: start_ns / 1_000_000,
            duration_s: o.elapsed.as_secs_f64(),
            probes_sent: o.run.sent(),
            report_interval_s: s.report_interval.as_secs_f64(),
            timeout_s: s.timeout.as_secs_f64(),
            expected_hosts: s.hosts.clone(),
            interrupted: o.interrupted,
            files: Vec::new(),
            prober_name: None,
            loss_from_first_answer: false,
        }
    }
}

/// The command line with `--key`'s secret replaced: the file is for sharing.
pub(crate) fn redact(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut secret_next = false;
    for a in args {
        if std::mem::take(&mut secret_next) {
            out.push(REDACTED.to_string());
        } else if a == "--key" {
            secret_next = true;
            out.push(a);
        } else if a.starts_with("--key=") {
            out.push(format!("--key={REDACTED}"));
        } else {
            out.push(a);
        }
    }
    out
}

const REDACTED: &str = "(secret)";

/// The run id: the session id every probe and ack of the run carries.
pub(crate) fn run_id(o: &Outcome) -> String {
    format_id(o.run.config().session)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_key_never_reaches_the_metadata() {
        let args = ["mcprobe", "probe", "--key", "s3cret", "--key=s3cret", "--key-file", "k.txt", "-q"];
        let out = super::redact(args.iter().map(|s| s.to_string()).collect());
        assert_eq!(out, ["mcprobe", "probe", "--key", "(secret)", "--key=(secret)", "--key-file", "k.txt", "-q"]);
    }
}
