//! The outputs of a run, each a small module that only renders [`Findings`]: the terminal table
//! and verdict table (here), the CSV rows ([`csv`]), JSON ([`json`]), report.html ([`html`]),
//! `meta.json` ([`meta`]) and the live progress ([`progress`]). Every decision (which rows, which
//! host, which verdict, what to advise) was made in [`crate::findings`]; [`crate::folder`] writes
//! the files.

pub(crate) mod csv;
pub(crate) mod html;
pub(crate) mod json;
pub(crate) mod max_rate;
pub(crate) mod mesh;
pub(crate) mod meta;
pub(crate) mod progress;
pub(crate) mod querier;
pub(crate) mod shared;
pub(crate) mod words;

use std::io::{self, Write};
use std::time::Duration;

use crate::findings::{Diagnosis, Findings, Path, Row};

pub(crate) use json::write_json;

fn opt(v: Option<f64>, precision: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.precision$}"))
}

fn us(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e3
}

/// What the RESPONDER column shows: the name, else the start of the id, else "-".
fn display_name(r: &Row) -> String {
    r.label().unwrap_or_else(|| "-".to_string())
}

/// What the ADDRESS column shows: where the acks came from (`[v6]:port` for IPv6), or the
/// expected host's address for a host that never answered.
fn display_address(r: &Row) -> String {
    match (&r.responder, r.expected_host) {
        (Some(x), _) => x.addr.to_string(),
        (None, Some(h)) => h.to_string(),
        (None, None) => "-".to_string(),
    }
}

/// The terminal's report of a run: the table, one row per responder and path, its summary lines,
/// the verdict table with --hosts, and every finding in words ([`words::all`]).
pub(crate) fn write_table(w: &mut impl Write, f: &Findings) -> io::Result<()> {
    let names: Vec<String> = f.rows.iter().map(display_name).collect();
    let addrs: Vec<String> = f.rows.iter().map(display_address).collect();
    let name_w = names.iter().map(|n| n.chars().count().max(16)).max().unwrap_or(16).min(40);
    let addr_w = addrs.iter().map(String::len).max().unwrap_or(7).max(7);
    // The PATH column appears with more than one path (--hosts); LIM when a responder limited.
    let paths = f.has_unicast();
    let path_col = |p: &str| if paths { format!("{p:<9}  ") } else { String::new() };
    let limits = f.rows.iter().any(|r| r.figures.limited > 0);
    let lim_col = |v: &str| if limits { format!(" {v:>5}") } else { String::new() };
    // HOST (of FWD, dropped by the responder's own host) when a responder reported such drops;
    // JOIN when a responder joined during the run.
    let host_drops = f.rows.iter().any(|r| r.figures.forward_host_drops.is_some_and(|d| d > 0));
    let host_col = |v: &str| if host_drops { format!(" {v:>5}") } else { String::new() };
    let joins = f.rows.iter().any(|r| r.figures.join_delay_ns.is_some());
    let join_col = |v: &str| if joins { format!(" {v:>8}") } else { String::new() };
    writeln!(
        w,
        "{:<name_w$}  {:<addr_w$}  {}{:>6} {:>6} {:>7} {:>5}{} {:>5} {:>5}{} {:>4} {:>4} {:>5}  {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}{}",
        "RESPONDER", "ADDRESS", path_col("PATH"), "SENT", "RCVD", "LOSS%", "FWD", host_col("HOST"), "RET", "UNK",
        lim_col("LIM"), "DUP", "REOR", "LATE", "MIN µs", "P50 µs", "P99 µs", "MAX µs", "JIT µs", "1ST ms",
        join_col("JOIN ms")
    )?;
    for ((r, name), addr) in f.rows.iter().zip(&names).zip(&addrs) {
        let g = &r.figures;
        let rtt = |pick: fn(&crate::stats::RttFigures) -> u64| opt(g.rtt.as_ref().map(|x| pick(x) as f64 / 1e3), 1);
        writeln!(
            w,
            "{:<name_w$}  {:<addr_w$}  {}{:>6} {:>6} {:>7.2} {:>5}{} {:>5} {:>5}{} {:>4} {:>4} {:>5}  {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}{}",
            name,
            addr,
            path_col(r.path.as_str()),
            g.sent,
            g.received,
            g.loss_pct(),
            g.forward_lost,
            host_col(&g.forward_host_drops.map_or("-".to_string(), |d| d.to_string())),
            g.return_lost,
            g.unknown_lost,
            lim_col(&g.limited.to_string()),
            g.duplicates,
            g.reordered,
            g.late,
            rtt(|x| x.min_ns),
            rtt(|x| x.p50_ns),
            rtt(|x| x.p99_ns),
            rtt(|x| x.max_ns),
            opt(g.rtt.as_ref().map(|x| x.jitter_ns / 1e3), 1),
            opt(g.first_ack_ns.map(|ns| ns as f64 / 1e6), 1),
            join_col(&opt(g.join_delay_ns.map(|ns| ns as f64 / 1e6), 1)),
        )?;
    }
    let n = f.responders().count();
    let lossless = f.responders().filter(|r| r.figures.lost == 0).count();
    writeln!(
        w,
        "{n} responder{} answered ({lossless} without loss); {} probes sent in {:.1}s{}",
        if n == 1 { "" } else { "s" },
        f.run.sent,
        f.run.elapsed.as_secs_f64(),
        if f.run.interrupted { ", stopped early" } else { "" },
    )?;
    if let (Some(p50), Some(p99)) = (f.run.lateness_p50, f.run.lateness_p99) {
        writeln!(w, "send lateness vs schedule: p50 {:.1} µs, p99 {:.1} µs", us(p50), us(p99))?;
    }
    for s in words::run(f) {
        writeln!(w, "{}", s.text)?;
    }
    if let Some(d) = &f.diagnosis {
        write_verdicts(w, d)?;
        for s in words::diagnosis(f) {
            writeln!(w, "{}", s.text)?;
        }
    }
    Ok(())
}

/// The verdict table of `--hosts` (its lines are [`words::diagnosis`]).
fn write_verdicts(w: &mut impl Write, d: &Diagnosis) -> io::Result<()> {
    writeln!(w)?;
    writeln!(
        w,
        "{:<15}  {:<16}  {:>10} {:>7}  {:>10} {:>7}  {:>4}  VERDICT",
        "HOST", "RESPONDER", "MCAST RCVD", "LOSS%", "UCAST RCVD", "LOSS%", "HOPS"
    )?;
    for h in &d.hosts {
        let name = if h.responders.is_empty() { "-".to_string() } else { h.responders.join(" ") };
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
    Ok(())
}

/// `discover`'s list: a header, one line per responder, then the count.
pub(crate) fn write_census(w: &mut impl Write, f: &Findings) -> io::Result<()> {
    let rows: Vec<&Row> = f.rows.iter().filter(|r| r.path == Path::Multicast && r.responder.is_some()).collect();
    let name_w = rows.iter().map(|r| display_name(r).chars().count()).max().unwrap_or(0).clamp(16, 40);
    let addr_w = rows.iter().map(|r| display_address(r).len()).max().unwrap_or(0).max(21);
    writeln!(w, "{:<name_w$}  {:<addr_w$}  {:>12}  ANSWERED", "RESPONDER", "ADDRESS", "RTT P50")?;
    for r in &rows {
        let p50 = opt(r.figures.rtt.as_ref().map(|x| x.p50_ns as f64 / 1e3), 1);
        writeln!(
            w,
            "{:<name_w$}  {:<addr_w$}  {p50:>9} µs  {}/{}",
            display_name(r),
            display_address(r),
            r.figures.received,
            r.figures.sent
        )?;
    }
    writeln!(w, "{} responder{} answered", rows.len(), if rows.len() == 1 { "" } else { "s" })?;
    for s in words::all(f) {
        writeln!(w, "{}", s.text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
