//! The outputs of a run, each a small module that only renders [`Findings`]: the terminal table
//! and verdict table (here), the CSV rows ([`csv`]), JSON ([`json`]), report.html ([`html`]),
//! `meta.json` ([`meta`]) and the live progress ([`progress`]). Every decision (which rows, which
//! host, which verdict, what to advise) was made in [`crate::findings`]; [`crate::folder`] writes
//! the files.

pub(crate) mod csv;
pub(crate) mod doctor;
pub(crate) mod host_path;
pub(crate) mod html;
pub(crate) mod json;
pub(crate) mod max_groups;
pub(crate) mod max_rate;
pub(crate) mod mesh;
pub(crate) mod meta;
pub(crate) mod progress;
pub(crate) mod querier;
pub(crate) mod shared;
pub(crate) mod table;
pub(crate) mod watch;
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
/// the verdict table with --hosts, and every finding in words ([`words::all`]). Columns are as
/// wide as their widest value; the optional ones (PATH, HOST, UNTOLD, LIM, JOIN) appear when they say
/// something.
pub(crate) fn write_table(w: &mut impl Write, f: &Findings) -> io::Result<()> {
    use table::Align::{Left, Right};
    let paths = f.has_unicast();
    let limits = f.rows.iter().any(|r| r.figures.limited > 0);
    let host_drops = f.rows.iter().any(|r| r.figures.loss.host_drops.is_some_and(|d| d > 0));
    // Forward loss after a responder's latest drop report: neither HOST nor the network's.
    let untold = f.rows.iter().any(|r| r.figures.loss.unreported > 0);
    let host_drops = host_drops || untold;
    let joins = f.rows.iter().any(|r| r.figures.join_delay_ns.is_some());
    let mut cols = vec![("RESPONDER", Left), ("ADDRESS", Left)];
    if paths {
        cols.push(("PATH", Left));
    }
    cols.extend([("SENT", Right), ("RCVD", Right), ("LOSS%", Right), ("FWD", Right)]);
    if host_drops {
        cols.push(("HOST", Right));
    }
    if untold {
        cols.push(("UNTOLD", Right));
    }
    cols.extend([("RET", Right), ("UNK", Right)]);
    if limits {
        cols.push(("LIM", Right));
    }
    cols.extend([
        ("DUP", Right),
        ("REOR", Right),
        ("LATE", Right),
        ("MIN µs", Right),
        ("P50 µs", Right),
        ("P99 µs", Right),
        ("MAX µs", Right),
        ("JIT µs", Right),
        ("1ST ms", Right),
    ]);
    if joins {
        cols.push(("JOIN ms", Right));
    }
    let mut t = table::Table::new(&cols);
    for r in &f.rows {
        let g = &r.figures;
        let rtt = |pick: fn(&crate::stats::RttFigures) -> u64| opt(g.rtt.as_ref().map(|x| pick(x) as f64 / 1e3), 1);
        let mut cells = vec![display_name(r), display_address(r)];
        if paths {
            cells.push(r.path.as_str().to_string());
        }
        cells.extend([
            g.sent.to_string(),
            g.received.to_string(),
            format!("{:.2}", g.loss_pct()),
            g.loss.forward.to_string(),
        ]);
        if host_drops {
            cells.push(g.loss.host_drops.map_or("-".to_string(), |d| d.to_string()));
        }
        if untold {
            cells.push(g.loss.host_drops.map_or("-".to_string(), |_| g.loss.unreported.to_string()));
        }
        cells.extend([g.loss.ret.to_string(), g.loss.unknown.to_string()]);
        if limits {
            cells.push(g.limited.to_string());
        }
        cells.extend([
            g.duplicates.to_string(),
            g.reordered.to_string(),
            g.late.to_string(),
            rtt(|x| x.min_ns),
            rtt(|x| x.p50_ns),
            rtt(|x| x.p99_ns),
            rtt(|x| x.max_ns),
            opt(g.rtt.as_ref().map(|x| x.jitter_ns / 1e3), 1),
            opt(g.first_ack_ns.map(|ns| ns as f64 / 1e6), 1),
        ]);
        if joins {
            cells.push(opt(g.join_delay_ns.map(|ns| ns as f64 / 1e6), 1));
        }
        t.row(cells);
    }
    t.write(w)?;
    writeln!(
        w,
        "{}; {} probes sent in {:.1}s{}",
        answered_line(f),
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

/// "1 probe", "2 probes": a count and its noun, in the number it takes.
pub(crate) fn counted(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "3 responders answered (2 without loss), from 2 hosts": responders and the hosts they
/// answered from are counted apart (two responders on one host are one host).
fn answered_line(f: &Findings) -> String {
    let n = f.responders().count();
    let plural = |k: usize, one: &str, many: &str| counted(k as u64, one, many);
    if n == 0 {
        return "0 responders answered".to_string();
    }
    let lossless = f.responders().filter(|r| r.figures.lost == 0).count();
    format!(
        "{} answered ({lossless} without loss), from {}",
        plural(n, "responder", "responders"),
        plural(f.hosts_answering(), "host", "hosts")
    )
}

/// The verdict table of `--hosts` (its lines are [`words::diagnosis`]).
fn write_verdicts(w: &mut impl Write, d: &Diagnosis) -> io::Result<()> {
    use table::Align::{Left, Right};
    writeln!(w)?;
    let mut t = table::Table::new(&[
        ("HOST", Left),
        ("RESPONDER", Left),
        ("MCAST RCVD", Right),
        ("LOSS%", Right),
        ("UCAST RCVD", Right),
        ("LOSS%", Right),
        ("HOPS", Right),
        ("VERDICT", Left),
    ]);
    for h in &d.hosts {
        t.row(vec![
            h.host.to_string(),
            if h.responders.is_empty() { "-".to_string() } else { h.responders.join(" ") },
            h.multicast_received.to_string(),
            format!("{:.2}", h.multicast_loss_pct),
            h.unicast_received.to_string(),
            format!("{:.2}", h.unicast_loss_pct),
            h.hops.map_or("-".to_string(), |v| v.to_string()),
            h.verdict.as_str().to_string(),
        ]);
    }
    t.write(w)
}

/// `discover`'s list: a header, one line per responder, then the count and every finding.
pub(crate) fn write_census(w: &mut impl Write, f: &Findings) -> io::Result<()> {
    use table::Align::{Left, Right};
    let rows: Vec<&Row> = f.rows.iter().filter(|r| r.path == Path::Multicast && r.responder.is_some()).collect();
    let mut t = table::Table::new(&[("RESPONDER", Left), ("ADDRESS", Left), ("P50 µs", Right), ("ANSWERED", Right)]);
    for r in &rows {
        let p50 = opt(r.figures.rtt.as_ref().map(|x| x.p50_ns as f64 / 1e3), 1);
        t.row(vec![display_name(r), display_address(r), p50, format!("{}/{}", r.figures.received, r.figures.sent)]);
    }
    t.write(w)?;
    writeln!(w, "{}", answered_line(f))?;
    for s in words::all(f) {
        writeln!(w, "{}", s.text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
