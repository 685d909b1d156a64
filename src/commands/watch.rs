//! The `watch` command: flags to a configuration, live sockets or a capture through the
//! engine, the live table, the report on stdout, the `--out` files and the exit code.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::exit;
use crate::cli::watch::{FormatArg, GroupsAt, WatchArgs, MAX_GROUPS};
use crate::folder::csv::AtomicCsv;
use crate::folder::meta::write_atomic;
use crate::folder::{RunFolder, Writer};
use crate::net;
use crate::output::watch::{self as output, WatchReport};
use crate::stream::engine::{Engine, EngineConfig, IntervalRow, StreamSummary};
use crate::stream::pcap::{self, Want};
use crate::stream::receive::{group_port, Receiver};
use crate::stream::verdict::{self, MinRate, Thresholds};
use crate::stream::FormatChoice;

const SECOND: u64 = 1_000_000_000;

/// The watch, validated.
#[derive(Debug)]
pub struct WatchConfig {
    pub groups: Vec<(IpAddr, u16)>,
    pub engine: EngineConfig,
    pub thresholds: Thresholds,
    pub output: crate::config::Output,
}

/// Flags to a configuration; errors name the flag and the value.
pub fn config_of(args: &WatchArgs) -> Result<WatchConfig> {
    let mut groups: Vec<(IpAddr, u16)> = Vec::new();
    let mut listed = Vec::with_capacity(args.groups.len());
    for g in &args.groups {
        let port = g.port.with_context(|| {
            format!("--groups {}: watch needs the streams' port after the list, as in 239.1.0.0/24:5000", g.spec)
        })?;
        listed.push(GroupsAt { groups: g.groups.clone(), port });
    }
    for g in args.streams.iter().chain(&listed) {
        for &a in &g.groups {
            net::check_group(a)?;
            if !groups.contains(&(a, g.port)) {
                groups.push((a, g.port));
            }
        }
    }
    if groups.len() > MAX_GROUPS {
        bail!("{} groups: more than the {MAX_GROUPS} one watch can join", groups.len());
    }
    if groups.is_empty() && args.pcap.is_none() {
        bail!("name at least one stream to watch (GROUP:PORT, or --groups RANGE:PORT), or read a capture with --pcap");
    }
    if let Some(s) = args.source {
        if let Some(&(g, _)) = groups.iter().find(|(g, _)| g.is_ipv6() != s.is_ipv6()) {
            bail!("--source {s}: not of the same family as the group {g}");
        }
    }
    let output = crate::config::output(&args.output)?;
    let format = match (args.seq, args.format) {
        (Some(f), _) => FormatChoice::Seq(f),
        (None, FormatArg::Auto) => FormatChoice::Auto,
        (None, FormatArg::Rtp) => FormatChoice::Rtp,
        (None, FormatArg::Ts) => FormatChoice::Ts,
        (None, FormatArg::Raw) => FormatChoice::Raw,
    };
    let media_rate = match args.ts_rate {
        Some(MinRate::BitsPerSecond(b)) => Some(b / 8.0),
        Some(MinRate::PacketsPerSecond(p)) => bail!("--ts-rate {p}pps: give the media rate in bits/s (e.g. 3.75M)"),
        None => None,
    };
    let gap = args.max_gap.unwrap_or(Duration::from_millis(200));
    Ok(WatchConfig {
        groups,
        engine: EngineConfig {
            format,
            rtp_clock: args.rtp_clock,
            gap_ns: gap.as_nanos() as u64,
            media_rate,
            ..EngineConfig::default()
        },
        output,
        thresholds: Thresholds {
            max_loss_pct: args.loss.max_loss,
            min_rate: args.min_rate,
            max_gap_s: args.max_gap.map(|d| d.as_secs_f64()),
        },
    })
}

/// `stream-intervals.csv`, written as intervals close into the report folder; a write error is
/// the folder's (said at once, the watch goes on), never the watch's.
struct Intervals(Option<(AtomicCsv, Writer)>);

impl Intervals {
    fn write(&mut self, rows: &[IntervalRow]) -> Result<()> {
        if let Some((f, w)) = &mut self.0 {
            w.write(|_| rows.iter().try_for_each(|r| f.write(r)));
        }
        Ok(())
    }
}

/// `mcprobe watch`.
pub(crate) fn watch(args: &WatchArgs, stop: &AtomicBool) -> Result<i32> {
    let cfg = config_of(args)?;
    let quiet = cfg.output.quiet;
    let run_id: u64 = rand::random();
    let folder = match &cfg.output.out {
        Some(dir) => Some(RunFolder::open(dir, cfg.output.force, run_id)?),
        None => None,
    };
    let mut intervals = Intervals(folder.as_ref().and_then(|f| {
        let w = f.writer().clone();
        w.write(|dir| AtomicCsv::create::<IntervalRow>(dir, "stream-intervals.csv", run_id)).map(|csv| (csv, w))
    }));
    let (engine, end_ns, mode, input, pcap_stats) = match &args.pcap {
        Some(path) => {
            let want = Want { groups: cfg.groups.clone(), source: args.source };
            let (engine, stats, last_ns) = pcap::read(path, cfg.engine.clone(), &want, |rows| intervals.write(&rows))?;
            let engine = engine.unwrap_or_else(|| {
                let mut e = Engine::new(cfg.engine.clone(), last_ns);
                for &(g, p) in &cfg.groups {
                    e.watch(g, p);
                }
                e
            });
            if !quiet {
                let cut = if stats.cut_off { "; the file ends inside a frame (a capture cut off)" } else { "" };
                eprintln!(
                    "{}: {} frames, {} datagrams watched, {} other UDP, {} not UDP, {} fragments, {} truncated{cut}",
                    path.display(),
                    stats.frames,
                    stats.datagrams,
                    stats.other_datagrams,
                    stats.not_udp,
                    stats.fragments,
                    stats.truncated
                );
            }
            (engine, last_ns.max(1), "pcap", path.display().to_string(), Some(stats))
        }
        None => {
            let iface = args.iface.as_deref().map(net::resolve_iface).transpose()?;
            let on = iface.as_ref().map_or("the default interface".to_string(), |i| i.name.clone());
            let (engine, end) = live(args, &cfg, iface.as_ref(), &on, stop, &mut intervals)?;
            (engine, end, "live", on, None)
        }
    };
    let mut engine = engine;
    engine.finish(end_ns);
    intervals.write(&engine.take_closed())?;
    let streams = engine.summaries(end_ns);
    let failures = verdict::check(&streams, &cfg.thresholds);
    let report = WatchReport {
        mcprobe_version: env!("CARGO_PKG_VERSION"),
        mode,
        input,
        started_unix_ns: engine.started_ns(),
        duration_s: end_ns.saturating_sub(engine.started_ns()) as f64 / 1e9,
        streams,
        thresholds: cfg.thresholds,
        failures,
        untracked_datagrams: engine.untracked,
        pcap: pcap_stats,
    };
    if cfg.output.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", output::table(&report.streams));
    }
    if !quiet {
        for f in &report.failures {
            eprintln!("mcprobe: {f}");
        }
    }
    let mut folder_error = None;
    if let Some(folder) = folder {
        let html = cfg.output.html;
        let csv = intervals.0.map(|(f, _)| f);
        folder.writer().write(|dir| write_out(dir, &report, &engine, csv, run_id, html));
        match folder.commit() {
            Ok(written) if !quiet => {
                let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
                eprintln!("wrote {}", names.join(", "));
            }
            Ok(_) => {}
            Err(e) => folder_error = Some(e),
        }
    }
    let code = if report.failures.is_empty() { exit::OK } else { exit::THRESHOLD };
    Ok(exit::with_folder(code, folder_error.as_ref()))
}

/// The watch's files, into the run folder's staging folder: streams.csv, stream-intervals.csv,
/// report.json and, unless --no-html, report.html.
fn write_out(
    dir: &Path,
    report: &WatchReport,
    engine: &Engine,
    intervals: Option<AtomicCsv>,
    run_id: u64,
    html: bool,
) -> Result<()> {
    let mut streams = AtomicCsv::create::<StreamSummary>(dir, "streams.csv", run_id)?;
    for s in &report.streams {
        streams.write(s)?;
    }
    streams.commit()?;
    if let Some(f) = intervals {
        f.commit()?;
    }
    let json = serde_json::to_string_pretty(report)?;
    write_atomic(dir, crate::output::json::FILE, json.as_bytes())?;
    if html {
        write_atomic(dir, crate::output::html::REPORT, output::html(report, &engine.timelines())?.as_bytes())?;
    }
    Ok(())
}

/// Joins, receives until the duration or a stop, refreshing the live table each second.
fn live(
    args: &WatchArgs,
    cfg: &WatchConfig,
    iface: Option<&net::Iface>,
    on: &str,
    stop: &AtomicBool,
    intervals: &mut Intervals,
) -> Result<(Engine, u64)> {
    if let Some(i) = iface {
        for &(g, _) in &cfg.groups {
            i.check_family(g)?;
        }
    }
    let t0 = net::now_ns();
    let mut rx = Receiver::open(&cfg.groups, iface, args.source, args.rcvbuf)?;
    let mut engine = Engine::new(cfg.engine.clone(), t0);
    for &(g, p) in &cfg.groups {
        engine.watch(g, p);
    }
    if !cfg.output.quiet {
        let list: Vec<String> = cfg.groups.iter().take(4).map(|&(g, p)| group_port(g, p)).collect();
        let more = if cfg.groups.len() > 4 { format!(" and {} more", cfg.groups.len() - 4) } else { String::new() };
        let until =
            args.duration.map_or("until Ctrl-C".to_string(), |d| format!("for {}", crate::output::progress::human(d)));
        eprintln!("watching {}{more} on {on} {until}", list.join(", "));
    }
    let bar = (!cfg.output.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(2));
        b.set_style(ProgressStyle::with_template("{msg}").expect("the template is valid"));
        b
    });
    let start = Instant::now();
    let mut next_tick = t0 + SECOND;
    loop {
        let left = args.duration.map(|d| d.saturating_sub(start.elapsed()));
        if stop.load(Ordering::Relaxed) || left.is_some_and(|l| l.is_zero()) {
            break;
        }
        let wait = left.map_or(Duration::from_millis(100), |l| l.min(Duration::from_millis(100)));
        rx.poll(wait, |g, port, bytes, r| engine.packet(g, port, r.from.ip(), r.from.port(), bytes, r.rx_ns))?;
        let now = net::now_ns();
        if now >= next_tick {
            next_tick = now - (now - t0) % SECOND + SECOND;
            for (g, p, d) in rx.local_drops() {
                engine.set_local_drops(g, p, d);
            }
            engine.advance(now);
            intervals.write(&engine.take_closed())?;
            if let Some(b) = &bar {
                let secs = (now - t0) / SECOND;
                b.set_message(format!("{secs} s\n{}", output::table(&engine.summaries(now))));
            }
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    for (g, p, d) in rx.local_drops() {
        engine.set_local_drops(g, p, d);
    }
    let end = match args.duration {
        // Exactly the duration asked, not whenever the last poll returned.
        Some(d) if !stop.load(Ordering::Relaxed) => t0 + d.as_nanos() as u64,
        _ => net::now_ns(),
    };
    Ok((engine, end))
}
