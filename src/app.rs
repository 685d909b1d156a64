//! The commands: each takes a configuration built by [`crate::config`], runs the engines, turns
//! their outcome into [`Findings`] and hands those to the outputs. Each returns the exit code;
//! every `Err` is a usage or environment error, which `main` turns into exit code 2.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::{DemoArgs, DiscoverArgs, ProbeArgs, RespondArgs};
use crate::config::{self, ProbeSetup};
use crate::findings::{Findings, Judgement, Miss, Thresholds, DEFAULT_THRESHOLD_PCT};
use crate::net::querier::QuerierWatch;
use crate::net::{self, Iface};
use crate::prober::{self, ProbeConfig};
use crate::progress::{human, LiveProgress};
use crate::report::{self, StreamedCsvs};
use crate::responder::{Event, Responder, ResponderConfig};
use crate::stats::{format_id, IntervalRow, RawRow};
use crate::watch;

pub(crate) const EXIT_OK: i32 = 0;
/// A threshold was not met, an expected host is not ok, or nothing answered.
pub(crate) const EXIT_THRESHOLD: i32 = 1;
/// With --hosts: some host gets unicast probes but not multicast ones.
pub(crate) const EXIT_MULTICAST_BROKEN: i32 = 3;

/// Writes to stdout. A closed pipe (`mcprobe … | head`) comes back as an error that `main`
/// recognises and ends on quietly.
fn emit(f: impl FnOnce(&mut io::StdoutLock) -> io::Result<()>) -> Result<()> {
    let mut out = io::stdout().lock();
    f(&mut out).and_then(|()| out.flush()).context("cannot write to stdout")
}

/// The interface and the source address of `group`'s family on it.
fn iface_label(iface: &Option<Iface>, group: IpAddr) -> String {
    match iface {
        Some(i) => i.source_for(group).map_or(i.name.clone(), |a| format!("{} ({a})", i.name)),
        None => "the default interface".to_string(),
    }
}

/// `mcprobe respond`: answers probes until Ctrl-C.
pub fn respond(args: &RespondArgs, stop: &AtomicBool) -> Result<i32> {
    let cfg = config::respond(args)?;
    let (name, group, port, iface, source) = (cfg.name.clone(), cfg.group, cfg.port, cfg.iface.clone(), cfg.source);
    let responder = Responder::bind(cfg)?;
    let watch = watch::start(&iface, group, args.querier_wait, args.quiet, "");
    let quiet = args.quiet;
    let mut failed = None;
    let counters = responder.run(stop, |ev| {
        if quiet || failed.is_some() {
            return;
        }
        let line = match ev {
            Event::Listening { id } => format!(
                "responder {name} (id {}) listening on {}{} via {}",
                format_id(*id),
                SocketAddr::new(group, port),
                source.map_or(String::new(), |s| format!(" from source {s}")),
                iface_label(&iface, group)
            ),
            Event::NewSession { session, from, ttl, arrival, join_delay_ns } => {
                let join = join_delay_ns.map_or(String::new(), |ns| {
                    format!("; joined during it, first probe {:.3} ms after joining (join delay)", ns as f64 / 1e6)
                });
                format!("session {} from {from}: ttl {ttl}, {}{join}", format_id(*session), arrival.as_str())
            }
            other => crate::responder::notice::describe(other),
        };
        failed = emit(|out| writeln!(out, "{line}")).err();
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if !quiet {
        let c = counters;
        emit(|out| {
            writeln!(
                out,
                "stopped: {} sessions, {} probes, {} acks sent; ignored {} invalid datagrams, {} other mcprobe messages, {} probes too small to answer, {} rate-limited, {} over the total budget, {} from sources not allowed, {} unauthenticated, {} stale (clock skew), {} replayed, {} from another address than their session's; {} send errors; {} local drops{}",
                c.sessions, c.probes, c.acks_sent, c.invalid, c.ignored, c.too_small, c.limited, c.over_budget, c.denied, c.unauthenticated, c.stale, c.replayed, c.wrong_source, c.send_errors, c.local_drops,
                if c.filtered > 0 { format!("; {} probes reached this host's interface but never the socket (dropped by this host)", c.filtered) } else { String::new() }
            )
        })?;
    }
    if let (Some(Ok(w)), false) = (watch, quiet) {
        let lines = watch::closing_lines(w);
        emit(|out| lines.iter().try_for_each(|l| writeln!(out, "{l}")))?;
    }
    Ok(EXIT_OK)
}

/// `mcprobe probe`.
pub fn probe(args: &ProbeArgs, stop: &AtomicBool) -> Result<i32> {
    let setup = config::probe(args)?;
    let watch = watch::start(&setup.probe.iface, setup.probe.group, setup.querier_wait, setup.quiet, "");
    let found = run_probe(&setup.probe, setup.out.as_deref(), setup.quiet, stop, setup.judgement, watch, setup.html)?;
    emit(|out| {
        if setup.json {
            return report::write_json(out, &found);
        }
        report::write_table(out, &found)?;
        found.diagnosis.as_ref().map_or(Ok(()), |d| report::write_diagnosis(out, d))?;
        report::querier::write_diagnosis_lines(out, &found)
    })?;
    Ok(exit_code(&found, &setup))
}

/// The exit code of a probe run, with a line on stderr for each threshold missed.
fn exit_code(found: &Findings, setup: &ProbeSetup) -> i32 {
    let code = judge(found, setup.thresholds);
    match &found.diagnosis {
        Some(d) if d.multicast_broken() => EXIT_MULTICAST_BROKEN,
        Some(d) if d.failing() > 0 => EXIT_THRESHOLD,
        _ => code,
    }
}

/// Says which thresholds were missed; exit code 1 if any was.
fn judge(found: &Findings, t: Thresholds) -> i32 {
    let misses = found.misses(t);
    for m in &misses {
        match m {
            Miss::Loss { name, addr, loss_pct, max_pct } => {
                eprintln!("mcprobe: {name} ({addr}) lost {loss_pct:.3}% > --max-loss {max_pct}")
            }
            Miss::TooFew { answered, min } => {
                eprintln!("mcprobe: {answered} responders answered < --min-responders {min}")
            }
            // The table's closing lines already say what to check.
            Miss::NobodyAnswered => {}
        }
    }
    if misses.is_empty() {
        EXIT_OK
    } else {
        EXIT_THRESHOLD
    }
}

/// Runs the prober with progress, writes the CSVs and makes the findings; shared by `probe` and
/// `demo`.
pub(crate) fn run_probe(
    cfg: &ProbeConfig,
    out: Option<&Path>,
    quiet: bool,
    stop: &AtomicBool,
    j: Judgement,
    watch: Option<Result<QuerierWatch, String>>,
    html: bool,
) -> Result<Findings> {
    let streamed = match out {
        Some(dir) => {
            let removed = report::prepare_dir(dir)?;
            if !removed.is_empty() && !quiet {
                eprintln!("replacing the files of an earlier run in {}: {}", dir.display(), removed.join(", "));
            }
            Some(Arc::new(Mutex::new(StreamedCsvs::create(dir, cfg.raw, cfg.session)?)))
        }
        None => None,
    };
    let hlog = crate::outfiles::hlog(cfg);
    let sink = streamed.clone().map(|f| -> prober::RowSink {
        let hlog = hlog.clone();
        Box::new(move |raw: &[RawRow], intervals: &[IntervalRow]| {
            f.lock().unwrap_or_else(|e| e.into_inner()).write(raw, intervals)?;
            crate::outfiles::add_intervals(&hlog, intervals)
        })
    });
    if !quiet {
        eprintln!(
            "probing {} via {}: {} probes every {}, {} B{}, ttl {}; acks count as late after {}",
            SocketAddr::new(cfg.group, cfg.port),
            iface_label(&cfg.iface, cfg.group),
            cfg.count,
            human(cfg.interval),
            cfg.plain.as_ref().map_or(cfg.size, Vec::len),
            prober::padded_size(cfg).map_or(String::new(), |n| format!(
                " ({n} B for the first and last 3 and one a second, so acks can carry names and host drops)"
            )),
            cfg.ttl,
            human(cfg.timeout)
        );
    }
    let mut live = LiveProgress::new(cfg.count, quiet);
    let mut said_grace = false;
    let outcome = prober::run(cfg, stop, sink, |p| {
        live.update(p);
        if p.draining && !said_grace && !quiet && !live.is_shown() {
            eprintln!("last probe sent; waiting {} for late acks", human(cfg.timeout));
            said_grace = true;
        }
    });
    live.finish();
    let mut outcome = outcome?;
    let mut found = Findings::of(&outcome, j);
    // Without the ack tap, a loss cannot be placed on this host's side or the network's: say so
    // once, when there was some.
    if let (Some(prober::AckWatch::NotWatched(why)), false) = (&outcome.ack_watch, quiet) {
        if found.responders().next().is_none() || found.rows.iter().any(|r| r.figures.lost > 0) {
            eprintln!("mcprobe: {why}");
        }
    }
    if let Some(w) = watch {
        found = found.with_querier(w.map(QuerierWatch::finish));
    }
    if let (Some(dir), Some(files)) = (out, streamed) {
        let mut written = report::write_final_csvs(dir, &found)?;
        let files = Arc::into_inner(files).context("the report writer is still in use")?;
        written.extend(files.into_inner().unwrap_or_else(|e| e.into_inner()).commit()?);
        written.extend(crate::outfiles::finish(dir, cfg, &mut outcome, hlog, &written, html)?);
        if !quiet {
            let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            eprintln!("wrote {}", names.join(", "));
        }
    }
    Ok(found)
}

/// `mcprobe discover`: a burst of probes 20 ms apart, a short wait, the responders that answered.
pub fn discover(args: &DiscoverArgs, stop: &AtomicBool) -> Result<i32> {
    let (cfg, judgement, thresholds) = config::discover(args)?;
    let outcome = prober::run(&cfg, stop, None, |_| {})?;
    let found = Findings::of(&outcome, judgement);
    emit(|out| if args.json { report::write_json(out, &found) } else { report::write_census(out, &found) })?;
    Ok(judge(&found, thresholds))
}

/// `mcprobe demo`: N responders on loopback, a short probe, the table and the CSVs.
pub fn demo(args: &DemoArgs, stop: &AtomicBool) -> Result<i32> {
    let lo = net::resolve_iface("127.0.0.1")?;
    let group: IpAddr = crate::cli::DEFAULT_GROUP.parse().expect("the default group is valid");
    // A port of our own, so the demo never meets a real responder of this host.
    let port = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
    let out = args.out.clone().unwrap_or_else(demo_dir);
    let responders_stop = AtomicBool::new(false);
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let cfg = ProbeConfig {
        interval,
        count: ((args.duration.as_secs_f64() * args.rate).round() as u64).max(1),
        timeout: Duration::from_millis(500),
        intervals: true,
        ..config::probe_defaults(group, port, Some(lo.clone()))
    };
    let judgement =
        Judgement { threshold_pct: DEFAULT_THRESHOLD_PCT, group: SocketAddr::new(group, port), keyed: false };
    let found = std::thread::scope(|s| -> Result<Findings> {
        let mut handles = Vec::new();
        for i in 0..args.responders {
            // Each demo "host" answers from its own loopback address, 127.0.0.2 and up.
            let r = Responder::bind(ResponderConfig {
                reply_from: Some(Ipv4Addr::new(127, 0, 0, i + 2)),
                ..config::responder_defaults(group, port, Some(lo.clone()), format!("demo-{}", i + 1))
            })?;
            let stop_r = &responders_stop;
            handles.push(s.spawn(move || r.run(stop_r, |_| {})));
        }
        if !args.quiet {
            eprintln!("started {} responders on loopback (127.0.0.2–127.0.0.{})", args.responders, args.responders + 1);
        }
        let result = run_probe(&cfg, Some(&out), args.quiet, stop, judgement, None, true);
        responders_stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a demo responder panicked"))??;
        }
        result
    })?;
    emit(|o| report::write_table(o, &found))?;
    emit(|o| writeln!(o, "report: {}", out.join(crate::html::REPORT).display()))?;
    Ok(EXIT_OK)
}

/// `mcprobe report DIR [DIR...]`: report.html (and with several folders matrix.csv) from report
/// folders.
pub fn report_cmd(args: &crate::cli::ReportArgs) -> Result<i32> {
    let to =
        args.to.clone().unwrap_or_else(|| if args.dirs.len() == 1 { args.dirs[0].clone() } else { PathBuf::from(".") });
    let written = crate::html::write_report(&args.dirs, &to)?;
    emit(|o| written.all().try_for_each(|p| writeln!(o, "wrote {}", p.display())))?;
    Ok(EXIT_OK)
}

fn demo_dir() -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    std::env::temp_dir().join(format!("mcprobe-demo-{secs}"))
}
