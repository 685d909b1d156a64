//! The `watch` command: flags to a configuration, live sockets or a capture through the
//! engine, the live table, the report on stdout, the `--out` files and the exit code.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::engine::{Engine, EngineConfig, IntervalRow, StreamSummary};
use super::output::{self, WatchReport};
use super::pcap::{self, Want};
use super::receive::{group_port, Receiver};
use super::verdict::{self, MinRate, Thresholds};
use super::FormatChoice;
use crate::cli::watch::{FormatArg, WatchArgs, MAX_GROUPS};
use crate::net;
use crate::report::AtomicCsv;

/// A threshold was missed.
pub const EXIT_MISSED: i32 = 1;

const SECOND: u64 = 1_000_000_000;

/// The watch, validated.
#[derive(Debug)]
pub struct WatchConfig {
    pub groups: Vec<(IpAddr, u16)>,
    pub engine: EngineConfig,
    pub thresholds: Thresholds,
}

/// Flags to a configuration; errors name the flag and the value.
pub fn config_of(args: &WatchArgs) -> Result<WatchConfig> {
    let mut groups: Vec<(IpAddr, u16)> = Vec::new();
    for g in args.streams.iter().chain(&args.groups) {
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
    if let Some(dir) = &args.out {
        if std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
            bail!("--out {}: is a file, not a folder", dir.display());
        }
    }
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
        thresholds: Thresholds {
            max_loss_pct: args.max_loss,
            min_rate: args.min_rate,
            max_gap_s: args.max_gap.map(|d| d.as_secs_f64()),
        },
    })
}

/// `stream-intervals.csv`, written as intervals close.
struct Intervals(Option<AtomicCsv>);

impl Intervals {
    fn write(&mut self, rows: &[IntervalRow]) -> Result<()> {
        if let Some(f) = &mut self.0 {
            for r in rows {
                f.write(r)?;
            }
        }
        Ok(())
    }
}

/// `mcprobe watch`.
pub fn watch(args: &WatchArgs, stop: &AtomicBool) -> Result<i32> {
    let cfg = config_of(args)?;
    let run_id: u64 = rand::random();
    let mut intervals = Intervals(match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("--out {}: cannot create the folder", dir.display()))?;
            Some(AtomicCsv::create::<IntervalRow>(dir, "stream-intervals.csv", run_id)?)
        }
        None => None,
    });
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
            if !args.quiet {
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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", output::table(&report.streams));
    }
    if !args.quiet {
        for f in &report.failures {
            eprintln!("mcprobe: {f}");
        }
    }
    if let (Some(dir), Some(f)) = (&args.out, intervals.0) {
        let written = write_out(dir, &report, &engine, f, run_id)?;
        if !args.quiet {
            let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            eprintln!("wrote {}", names.join(", "));
        }
    }
    Ok(if report.failures.is_empty() { 0 } else { EXIT_MISSED })
}

fn write_out(
    dir: &Path,
    report: &WatchReport,
    engine: &Engine,
    intervals: AtomicCsv,
    run_id: u64,
) -> Result<Vec<PathBuf>> {
    let mut streams = AtomicCsv::create::<StreamSummary>(dir, "streams.csv", run_id)?;
    for s in &report.streams {
        streams.write(s)?;
    }
    let mut written = vec![streams.commit()?, intervals.commit()?];
    written.push(crate::meta::write_atomic(dir, "watch.json", serde_json::to_string_pretty(report)?.as_bytes())?);
    let html = output::html(report, &engine.timelines())?;
    written.push(crate::meta::write_atomic(dir, "report.html", html.as_bytes())?);
    Ok(written)
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
    if !args.quiet {
        let list: Vec<String> = cfg.groups.iter().take(4).map(|&(g, p)| group_port(g, p)).collect();
        let more = if cfg.groups.len() > 4 { format!(" and {} more", cfg.groups.len() - 4) } else { String::new() };
        let until = args.duration.map_or("until Ctrl-C".to_string(), |d| format!("for {}", crate::progress::human(d)));
        eprintln!("watching {}{more} on {on} {until}", list.join(", "));
    }
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
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
