//! The outputs of a run: the terminal table and verdict table (here), the CSV files
//! ([`files`]) and JSON ([`json`]). Each only renders [`Findings`]: every decision (which rows,
//! which host, which verdict, what to advise) was made in [`crate::findings`].

pub(crate) mod files;
pub(crate) mod host_path;
pub(crate) mod json;
pub(crate) mod querier;
pub(crate) mod shared;

use std::io::{self, Write};
use std::time::Duration;

use crate::findings::{Diagnosis, Findings, Note, Path, Row};

pub use files::remove_unfinished;
pub(crate) use files::{prepare_dir, write_final_csvs, AtomicCsv, StreamedCsvs};
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

/// The summary table, one row per responder and path, then the closing lines.
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
    for line in closing_lines(f, 20) {
        writeln!(w, "{line}")?;
    }
    Ok(())
}

/// Restarts, outages (at most `max_outages`), then the notes.
fn closing_lines(f: &Findings, max_outages: usize) -> Vec<String> {
    let mut lines: Vec<String> = f
        .restarts
        .iter()
        .map(|r| {
            format!(
                "{} restarted: id {} answered up to probe {}, id {} from probe {}; {} probes unanswered in between",
                r.name, r.before, r.last_seq, r.after, r.first_seq, r.unanswered
            )
        })
        .collect();
    for o in f.outages.iter().take(max_outages) {
        let end = o.end.map_or("the end of the run".to_string(), |e| format!("{:.3} s", e.as_secs_f64()));
        lines.push(format!(
            "outage: {} from {:.3} s to {end}, {} probes unanswered",
            o.name,
            o.start.as_secs_f64(),
            o.probes_lost
        ));
    }
    if f.outages.len() > max_outages {
        lines.push(format!("… and {} more outages (outages.csv lists them all)", f.outages.len() - max_outages));
    }
    lines.extend(f.notes.iter().map(note_line));
    lines
}

/// One note in words.
pub(crate) fn note_line(n: &Note) -> String {
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
        Note::NothingAnswered(s) => {
            let key = if s.keyed { "the same --key on both sides" } else { "no --key on the responders, or --key here too" };
            format!(
                "no responder answered: check that responders run on group {} port {}, that --iface is the LAN's interface, that no host firewall drops UDP port {}, that --ttl {} reaches them, and {key}",
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
        Note::HostDrops { name, path, host, network } => format!(
            "{name}{}: {host} of its {} probes lost forward were dropped by its own host (socket buffer full: raise `respond --rcvbuf` or lower the rate), {network} by the network",
            if *path == Path::Unicast { " (unicast)" } else { "" },
            host + network
        ),
        Note::AcksDroppedHere(d) => host_path::acks_line(d),
        Note::ProbesDroppedAtHost(d) => host_path::probes_line(d),
        Note::Querier(q) => querier::seen_line(q),
        Note::QuerierSilent(s) => querier::silence_line(s),
        Note::GroupMismatch => "no expected host answered on the group, but every one answered unicast: the group or port of the responders probably differs from this prober's (--group, --port)".to_string(),
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
    let where_ = if g.everyone {
        format!("a fault at the sender's side, upstream of {all} responders (the prober's host or link)")
    } else {
        format!("a fault upstream of {all}, on a link or switch they share")
    };
    let p = if g.log10_p.is_finite() { format!("p < 1e{}", g.log10_p.ceil() as i64) } else { "p ≈ 0".to_string() };
    format!(
        "{} lost the same {} probes: {where_} ({} with exactly these, {:.2} expected if independent, {p})",
        and_list(&g.members),
        g.probes,
        g.observed,
        g.expected
    )
}

/// The verdict table of `--hosts`, then missing and unexpected responders and advice.
pub(crate) fn write_diagnosis(w: &mut impl Write, d: &Diagnosis) -> io::Result<()> {
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
    let missing: Vec<String> = d.missing_on_multicast().map(|h| h.to_string()).collect();
    writeln!(w, "{} of {} expected hosts ok", d.hosts.len() - d.failing(), d.hosts.len())?;
    if !missing.is_empty() {
        writeln!(w, "missing on multicast: {}", missing.join(", "))?;
    }
    if !d.unexpected.is_empty() {
        let list: Vec<String> = d.unexpected.iter().map(|(n, a)| format!("{n} ({a})")).collect();
        writeln!(w, "unexpected responders: {}", list.join(", "))?;
    }
    for h in &d.hosts {
        let advice = h.advice_text();
        if !advice.is_empty() {
            writeln!(w, "{}: {advice}", h.host)?;
        }
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
    for n in &f.notes {
        writeln!(w, "{}", note_line(n))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
