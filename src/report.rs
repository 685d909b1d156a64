//! Reports: the terminal table, JSON, and the CSV files. Every CSV file appears complete or not at
//! all: it is written to a temporary file in the target folder and renamed into place.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use std::net::IpAddr;

use crate::diagnosis::{self, Diagnosis};
use crate::prober::Outcome;
use crate::stats::{format_id, ns_to_us, Figures, HostStats, IntervalRow, RawRow, Run};

/// The hosts of a run in report order: by name, then address, then id, so reruns line up.
pub fn sorted_hosts(run: &Run) -> Vec<&HostStats> {
    let mut hosts: Vec<&HostStats> = run.hosts().iter().collect();
    hosts.sort_by(|a, b| (&a.name, a.addr, a.responder_id).cmp(&(&b.name, b.addr, b.responder_id)));
    hosts
}

/// Final rows, in report order. A restarted responder is one row already (stats links its ids).
pub fn summaries(run: &Run) -> Vec<HostSummary> {
    sorted_hosts(run).into_iter().map(|h| HostSummary::new(h, &run.summary(h))).collect()
}

/// The final figures of one responder on one path: one row of `summary.csv`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostSummary {
    pub responder: String,
    pub responder_id: String,
    pub address: String,
    /// `multicast`, or `unicast` for the probes sent to each `--hosts` host.
    pub path: &'static str,
    /// With `--hosts`: the expected host this row belongs to (the unicast target, or for multicast
    /// the host whose address or responder id matches).
    pub expected_host: Option<String>,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_pct: f64,
    /// Loss counted from this responder's first on-time ack on: a join's first lost probes are
    /// tolerated, any loss after them is not.
    pub lost_after_first: u64,
    pub loss_after_first_pct: f64,
    pub forward_lost: u64,
    pub return_lost: u64,
    pub unknown_lost: u64,
    pub limited: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub late: u64,
    pub rtt_min_us: Option<f64>,
    pub rtt_mean_us: Option<f64>,
    pub rtt_p50_us: Option<f64>,
    pub rtt_p90_us: Option<f64>,
    pub rtt_p99_us: Option<f64>,
    pub rtt_p999_us: Option<f64>,
    pub rtt_max_us: Option<f64>,
    pub rtt_stddev_us: Option<f64>,
    pub net_rtt_p50_us: Option<f64>,
    pub net_rtt_mean_us: Option<f64>,
    pub jitter_us: Option<f64>,
    pub first_ack_ms: Option<f64>,
    pub ttl: u8,
    /// Routers between prober and responder: the TTL the probes left with minus `ttl`.
    pub hops: Option<u8>,
    pub arrival: &'static str,
    /// With `--hosts`: the host's verdict (see the README's "Diagnosing a LAN").
    pub verdict: Option<&'static str>,
    /// Outages (details in outages.csv), and the longest one's length.
    pub outages: u64,
    pub longest_outage_probes: u64,
    /// First and last probe acked on time.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Always empty: stats makes a restarted responder one row (see `restarts`); kept so the
    /// column stays where it was.
    pub restart_of: Option<String>,
    /// Figures from `stats::Figures` (see the README's column list).
    pub limited_tail: u64,
    pub restarts: u64,
    pub restart_gap_lost: u64,
    pub inconsistent_acks: u64,
    pub dwell_over_rtt: u64,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl HostSummary {
    fn new(h: &HostStats, f: &Figures) -> Self {
        HostSummary {
            responder: h.name.clone(),
            responder_id: format_id(h.responder_id),
            address: h.addr.to_string(),
            ..Self::from_figures(f)
        }
    }

    fn from_figures(f: &Figures) -> Self {
        let us = |ns: f64| round3(ns / 1000.0);
        let r = f.rtt;
        HostSummary {
            path: "multicast",
            sent: f.sent,
            received: f.received,
            lost: f.lost,
            loss_pct: round3(f.loss_pct()),
            lost_after_first: f.lost_after_first,
            loss_after_first_pct: round3(f.loss_after_first_pct()),
            forward_lost: f.forward_lost,
            return_lost: f.return_lost,
            unknown_lost: f.unknown_lost,
            limited: f.limited,
            limited_tail: f.limited_tail,
            restarts: f.restarts,
            restart_gap_lost: f.restart_gap_lost,
            inconsistent_acks: f.inconsistent_acks,
            dwell_over_rtt: f.dwell_over_rtt,
            duplicates: f.duplicates,
            reordered: f.reordered,
            late: f.late,
            rtt_min_us: r.map(|r| ns_to_us(r.min_ns)),
            rtt_mean_us: r.map(|r| us(r.mean_ns)),
            rtt_p50_us: r.map(|r| ns_to_us(r.p50_ns)),
            rtt_p90_us: r.map(|r| ns_to_us(r.p90_ns)),
            rtt_p99_us: r.map(|r| ns_to_us(r.p99_ns)),
            rtt_p999_us: r.map(|r| ns_to_us(r.p999_ns)),
            rtt_max_us: r.map(|r| ns_to_us(r.max_ns)),
            rtt_stddev_us: r.map(|r| us(r.stddev_ns)),
            net_rtt_p50_us: r.and_then(|r| r.net_p50_ns.map(ns_to_us)),
            net_rtt_mean_us: r.and_then(|r| r.net_mean_ns.map(us)),
            jitter_us: r.map(|r| us(r.jitter_ns)),
            first_ack_ms: f.first_ack_ns.map(|ns| round3(ns as f64 / 1e6)),
            ttl: f.ttl,
            hops: None,
            arrival: f.arrival.as_str(),
            verdict: None,
            outages: f.outages,
            longest_outage_probes: f.longest_outage_probes,
            first_seq: f.first_seq,
            last_seq: f.last_seq,
            ..HostSummary::default()
        }
    }
}

/// Everything reported about a finished run: the rows of every path, and with `--hosts` the
/// diagnosis of each expected host.
pub struct Findings {
    pub rows: Vec<HostSummary>,
    pub diagnosis: Option<Diagnosis>,
}

/// Rows for the multicast path and, with `--hosts`, the unicast path to each host (a host that
/// never answered on a path gets a row with nothing received), then the diagnosis.
pub fn findings(o: &Outcome, threshold_pct: f64) -> Findings {
    let with_hops = |mut r: HostSummary, path: &'static str, ttl: u32| {
        r.path = path;
        r.hops = diagnosis::hops(ttl, r.ttl);
        r
    };
    let mut rows: Vec<HostSummary> = summaries(&o.run).into_iter().map(|r| with_hops(r, "multicast", o.ttl)).collect();
    if o.unicast.is_empty() {
        return Findings { rows, diagnosis: None };
    }
    let hosts: Vec<IpAddr> = o.unicast.iter().map(|u| u.host).collect();
    for u in &o.unicast {
        let key = u.host.to_string();
        let mut uc: Vec<HostSummary> = summaries(&u.run);
        if uc.is_empty() {
            uc.push(silent_row(u.host, "unicast", u.run.sent()));
        }
        // A multicast row belongs to this host when it comes from its address or from a
        // responder that answered this host's unicast probes (identity from the payload).
        let ids: Vec<&str> = uc.iter().map(|r| r.responder_id.as_str()).filter(|id| !id.is_empty()).collect();
        let mut heard = false;
        for r in rows.iter_mut().filter(|r| r.expected_host.is_none()) {
            if r.address.split(':').next() == Some(key.as_str()) || ids.contains(&r.responder_id.as_str()) {
                r.expected_host = Some(key.clone());
                heard = true;
            }
        }
        if !heard {
            rows.push(silent_row(u.host, "multicast", o.run.sent()));
        }
        rows.extend(uc.into_iter().map(|r| HostSummary {
            expected_host: Some(key.clone()),
            ..with_hops(r, "unicast", crate::prober::UNICAST_TTL)
        }));
    }
    let diag = diagnosis::diagnose(&hosts, &rows, threshold_pct, o.ttl);
    for r in &mut rows {
        let host = r.expected_host.as_deref();
        r.verdict = diag.hosts.iter().find(|h| Some(h.host.to_string().as_str()) == host).map(|h| h.verdict.as_str());
    }
    rows.sort_by(|a, b| (&a.responder, &a.address, a.path).cmp(&(&b.responder, &b.address, b.path)));
    Findings { rows, diagnosis: Some(diag) }
}

/// The row of an expected host that never answered on `path`.
fn silent_row(host: IpAddr, path: &'static str, sent: u64) -> HostSummary {
    HostSummary {
        address: host.to_string(),
        expected_host: Some(host.to_string()),
        path,
        arrival: "",
        ..HostSummary::from_figures(&Figures::silent(sent))
    }
}

/// The verdict table of `--hosts`, then missing and unexpected responders and advice.
pub fn write_diagnosis(w: &mut impl Write, d: &Diagnosis) -> io::Result<()> {
    writeln!(w)?;
    writeln!(
        w,
        "{:<15}  {:<16}  {:>10} {:>7}  {:>10} {:>7}  {:>4}  VERDICT",
        "HOST", "RESPONDER", "MCAST RCVD", "LOSS%", "UCAST RCVD", "LOSS%", "HOPS"
    )?;
    for h in &d.hosts {
        let name = if h.responder.is_empty() { "-" } else { &h.responder };
        let hops = h.hops.map_or("-".to_string(), |v| v.to_string());
        writeln!(
            w,
            "{:<15}  {name:<16}  {:>10} {:>7.2}  {:>10} {:>7.2}  {hops:>4}  {}",
            h.host.to_string(),
            h.multicast_received,
            h.multicast_loss_pct,
            h.unicast_received,
            h.unicast_loss_pct,
            h.verdict.as_str()
        )?;
    }
    let missing: Vec<String> =
        d.hosts.iter().filter(|h| h.multicast_received == 0).map(|h| h.host.to_string()).collect();
    let ok = d.hosts.len() - d.failing();
    writeln!(w, "{ok} of {} expected hosts ok", d.hosts.len())?;
    if !missing.is_empty() {
        writeln!(w, "missing on multicast: {}", missing.join(", "))?;
    }
    if !d.unexpected.is_empty() {
        writeln!(w, "unexpected responders: {}", d.unexpected.join(", "))?;
    }
    for h in d.hosts.iter().filter(|h| !h.advice.is_empty()) {
        writeln!(w, "{}: {}", h.host, h.advice)?;
    }
    Ok(())
}

/// One line per restart (who, and how many probes went unanswered across it), and one per name
/// that responders at different addresses share.
pub fn restart_notes(run: &Run) -> Vec<String> {
    let restarts = run.restarts().map(|(i, r)| {
        format!(
            "{} restarted: id {} answered up to probe {}, id {} from probe {}; {} probes unanswered in between",
            run.hosts()[i].name,
            format_id(r.old_id),
            r.old_last_seq,
            format_id(r.new_id),
            r.new_first_seq,
            r.gap_probes()
        )
    });
    let clashes = run.name_clashes().into_iter().map(|(name, addrs)| {
        let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        format!("several responders are named {name} ({}): give each its own with respond --name", addrs.join(", "))
    });
    restarts.chain(clashes).collect()
}

fn opt(v: Option<f64>, precision: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.precision$}"))
}

/// The summary table, one row per responder, then the count line.
pub fn write_table(w: &mut impl Write, rows: &[HostSummary], outcome: &Outcome) -> io::Result<()> {
    let name_w = rows.iter().map(|r| r.responder.len().max(16)).max().unwrap_or(16).min(40);
    let addr_w = rows.iter().map(|r| r.address.len()).max().unwrap_or(7).max(7);
    // The PATH column appears when there is more than one path (with --hosts).
    let paths = rows.iter().any(|r| r.path == "unicast");
    let path_col = |p: &str| if paths { format!("{p:<9}  ") } else { String::new() };
    writeln!(
        w,
        "{:<name_w$}  {:<addr_w$}  {}{:>6} {:>6} {:>7} {:>5} {:>5} {:>5} {:>4} {:>4} {:>5}  {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "RESPONDER", "ADDRESS", path_col("PATH"), "SENT", "RCVD", "LOSS%", "FWD", "RET", "UNK", "DUP", "REOR", "LATE",
        "MIN µs", "P50 µs", "P99 µs", "MAX µs", "JIT µs", "1ST ms"
    )?;
    for r in rows {
        let name = match (&r.responder, r.responder_id.get(..8)) {
            (n, _) if !n.is_empty() => n.clone(),
            (_, Some(id)) => format!("({id})"),
            (_, None) => "-".to_string(),
        };
        writeln!(
            w,
            "{:<name_w$}  {:<addr_w$}  {}{:>6} {:>6} {:>7.2} {:>5} {:>5} {:>5} {:>4} {:>4} {:>5}  {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
            name,
            r.address,
            path_col(r.path),
            r.sent,
            r.received,
            r.loss_pct,
            r.forward_lost,
            r.return_lost,
            r.unknown_lost,
            r.duplicates,
            r.reordered,
            r.late,
            opt(r.rtt_min_us, 1),
            opt(r.rtt_p50_us, 1),
            opt(r.rtt_p99_us, 1),
            opt(r.rtt_max_us, 1),
            opt(r.jitter_us, 1),
            opt(r.first_ack_ms, 1),
        )?;
    }
    let run = &outcome.run;
    let rows: Vec<&HostSummary> = rows.iter().filter(|r| r.path == "multicast" && r.received > 0).collect();
    let n = rows.len();
    let lossless = rows.iter().filter(|r| r.lost == 0).count();
    writeln!(
        w,
        "{n} responder{} answered ({lossless} without loss); {} probes sent in {:.1}s{}",
        if n == 1 { "" } else { "s" },
        run.sent(),
        outcome.elapsed.as_secs_f64(),
        if outcome.interrupted { ", stopped early" } else { "" },
    )?;
    let l = &outcome.lateness;
    if !l.is_empty() {
        writeln!(
            w,
            "send lateness vs schedule: p50 {:.1} µs, p99 {:.1} µs",
            l.value_at_quantile(0.5) as f64 / 1e3,
            l.value_at_quantile(0.99) as f64 / 1e3,
        )?;
    }
    for note in restart_notes(&outcome.run).into_iter().chain(outage_notes(&outcome.run, 20)).chain(notes(outcome)) {
        writeln!(w, "{note}")?;
    }
    Ok(())
}

/// Everything else worth a line: what was ignored, limited, forged or dropped locally.
fn notes(o: &Outcome) -> Vec<String> {
    let mut parts = Vec::new();
    if o.run.foreign_acks > 0 {
        parts.push(format!("{} acks of other sessions ignored", o.run.foreign_acks));
    }
    if o.run.bogus_acks + o.invalid > 0 {
        parts.push(format!("{} invalid datagrams ignored", o.run.bogus_acks + o.invalid));
    }
    if o.forged > 0 {
        parts.push(format!("{} acks without a valid key tag rejected", o.forged));
    }
    let limited: u64 = o.run.hosts().iter().map(|h| o.run.summary(h).limited).sum();
    if limited > 0 {
        parts.push(format!("{limited} probes rate-limited by responders: not loss, see the limited column"));
    }
    if o.local_drops > 0 {
        parts.push(format!(
            "{} acks dropped by this host's socket buffer: local, not network loss; raise --rcvbuf",
            o.local_drops
        ));
    }
    if o.send_errors > 0 {
        parts.push(format!("{} probes failed to send", o.send_errors));
    }
    parts
}

/// `discover`'s list: one line per responder, then the count.
pub fn write_census(w: &mut impl Write, rows: &[HostSummary]) -> io::Result<()> {
    let name_w = rows.iter().map(|r| r.responder.len()).max().unwrap_or(0).clamp(16, 40);
    for r in rows {
        let name = if r.responder.is_empty() { format!("({})", &r.responder_id[..8]) } else { r.responder.clone() };
        writeln!(
            w,
            "{name:<name_w$}  {:<21}  {:>9} µs  {}/{} answered",
            r.address,
            opt(r.rtt_p50_us, 1),
            r.received,
            r.sent
        )?;
    }
    writeln!(w, "{} responder{} answered", rows.len(), if rows.len() == 1 { "" } else { "s" })
}

#[derive(Serialize)]
struct JsonReport<'a> {
    session: String,
    sent: u64,
    elapsed_s: f64,
    interrupted: bool,
    send_lateness_p50_us: f64,
    send_lateness_p99_us: f64,
    foreign_acks: u64,
    invalid: u64,
    forged_acks: u64,
    local_drops: u64,
    responders: &'a [HostSummary],
    outages: Vec<OutageRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diagnosis: Option<&'a Diagnosis>,
}

pub fn write_json(w: &mut impl Write, f: &Findings, o: &Outcome) -> io::Result<()> {
    let rows = &f.rows;
    let l = &o.lateness;
    let report = JsonReport {
        session: format_id(o.run.config().session),
        sent: o.run.sent(),
        elapsed_s: o.elapsed.as_secs_f64(),
        interrupted: o.interrupted,
        send_lateness_p50_us: ns_to_us(l.value_at_quantile(0.5)),
        send_lateness_p99_us: ns_to_us(l.value_at_quantile(0.99)),
        foreign_acks: o.run.foreign_acks,
        invalid: o.run.bogus_acks + o.invalid,
        forged_acks: o.forged,
        local_drops: o.local_drops,
        responders: rows,
        outages: outage_rows(&o.run),
        diagnosis: f.diagnosis.as_ref(),
    };
    serde_json::to_writer_pretty(&mut *w, &report)?;
    writeln!(w)
}

/// One row of `outages.csv`.
#[derive(Debug, Default, Serialize)]
pub struct OutageRow {
    pub responder: String,
    pub responder_id: String,
    /// Send time of the first unanswered probe, seconds after the first probe.
    pub start_s: f64,
    /// Send time of the first probe answered again; empty if the run ended first.
    pub end_s: Option<f64>,
    pub duration_s: Option<f64>,
    pub probes_lost: u64,
    pub first_lost_seq: u64,
    pub start_unix_ns: u64,
    pub end_unix_ns: Option<u64>,
}

pub fn outage_rows(run: &Run) -> Vec<OutageRow> {
    let t0 = run.start_ns().unwrap_or(0);
    let secs = |ns: u64| (ns.saturating_sub(t0) as f64 / 1e6).round() / 1e3;
    let mut rows = Vec::new();
    for h in sorted_hosts(run) {
        for o in &h.outages {
            rows.push(OutageRow {
                responder: h.name.clone(),
                responder_id: format_id(h.responder_id),
                start_s: secs(o.start_unix_ns),
                end_s: o.end_unix_ns.map(secs),
                duration_s: o.end_unix_ns.map(|e| (e.saturating_sub(o.start_unix_ns) as f64 / 1e6).round() / 1e3),
                probes_lost: o.probes_lost,
                first_lost_seq: o.first_lost_seq,
                start_unix_ns: o.start_unix_ns,
                end_unix_ns: o.end_unix_ns,
            });
        }
    }
    rows
}

/// Table lines for outages, at most `max` of them.
fn outage_notes(run: &Run, max: usize) -> Vec<String> {
    let rows = outage_rows(run);
    let mut notes: Vec<String> = rows
        .iter()
        .take(max)
        .map(|o| {
            let end = o.end_s.map_or("the end of the run".to_string(), |e| format!("{e:.3} s"));
            format!("outage: {} from {:.3} s to {end}, {} probes unanswered", o.responder, o.start_s, o.probes_lost)
        })
        .collect();
    if rows.len() > max {
        notes.push(format!("… and {} more outages (outages.csv lists them all)", rows.len() - max));
    }
    notes
}

/// A CSV file being written under a temporary name; [`AtomicCsv::commit`] renames it into place.
pub struct AtomicCsv {
    writer: csv::Writer<tempfile::NamedTempFile>,
    path: PathBuf,
    tmp_path: PathBuf,
}

/// Temporary files not yet renamed into place: a second Ctrl-C removes them before exiting, so
/// nothing half-written is left behind.
static UNFINISHED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes the temporary files of reports still being written (for an immediate exit).
pub fn remove_unfinished() {
    let files = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
    for f in files.iter() {
        let _ = std::fs::remove_file(f);
    }
}

/// The header line of `T`'s CSV rows, taken from a default row, so that a file without rows
/// still says what its columns are.
fn header_line<T: Serialize + Default>() -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.serialize(T::default())?;
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{}", e.error()))?;
    let end = bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| i + 1);
    Ok(bytes[..end].to_vec())
}

impl AtomicCsv {
    /// Starts `dir/name` for rows of type `T`, its header already written.
    pub fn create<T: Serialize + Default>(dir: &Path, name: &str) -> Result<Self> {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        tmp.write_all(&header_line::<T>()?).with_context(|| format!("cannot write in {}", dir.display()))?;
        let tmp_path = tmp.path().to_path_buf();
        UNFINISHED.lock().unwrap_or_else(|e| e.into_inner()).push(tmp_path.clone());
        let writer = csv::WriterBuilder::new().has_headers(false).from_writer(tmp);
        Ok(AtomicCsv { writer, path: dir.join(name), tmp_path })
    }

    pub fn write<T: Serialize>(&mut self, row: &T) -> Result<()> {
        self.writer.serialize(row).with_context(|| format!("cannot write {}", self.path.display()))
    }

    pub fn commit(self) -> Result<PathBuf> {
        let tmp = self.writer.into_inner().map_err(|e| anyhow::anyhow!("cannot write: {}", e.error()))?;
        tmp.as_file().sync_all().ok();
        // Reports are for reading: rw-r--r--, not the temporary file's rw-------.
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).ok();
        tmp.persist(&self.path).with_context(|| format!("cannot rename into {}", self.path.display()))?;
        UNFINISHED.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| p != &self.tmp_path);
        Ok(self.path)
    }
}

fn write_all<T: Serialize + Default>(dir: &Path, name: &str, rows: &[T]) -> Result<PathBuf> {
    let mut f = AtomicCsv::create::<T>(dir, name)?;
    for r in rows {
        f.write(r)?;
    }
    f.commit()
}

/// Creates the output folder, or says clearly why it cannot.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("--out {}: cannot create the folder", dir.display()))
}

/// Writes `summary.csv` and `outages.csv`; returns their paths.
pub fn write_final_csvs(dir: &Path, rows: &[HostSummary], run: &Run) -> Result<Vec<PathBuf>> {
    Ok(vec![write_all(dir, "summary.csv", rows)?, write_all(dir, "outages.csv", &outage_rows(run))?])
}

/// The files filled while the run goes on: `intervals.csv`, and `probes.csv` with `--raw`.
pub struct StreamedCsvs {
    intervals: AtomicCsv,
    raw: Option<AtomicCsv>,
}

impl StreamedCsvs {
    pub fn create(dir: &Path, raw: bool) -> Result<Self> {
        let raw = if raw { Some(AtomicCsv::create::<RawRow>(dir, "probes.csv")?) } else { None };
        Ok(StreamedCsvs { intervals: AtomicCsv::create::<IntervalRow>(dir, "intervals.csv")?, raw })
    }

    pub fn write(&mut self, raw: &[RawRow], intervals: &[IntervalRow]) -> Result<()> {
        intervals.iter().try_for_each(|r| self.intervals.write(r))?;
        if let Some(f) = self.raw.as_mut() {
            raw.iter().try_for_each(|r| f.write(r))?;
        }
        Ok(())
    }

    pub fn commit(self) -> Result<Vec<PathBuf>> {
        let mut paths = vec![self.intervals.commit()?];
        if let Some(f) = self.raw {
            paths.push(f.commit()?);
        }
        Ok(paths)
    }
}
