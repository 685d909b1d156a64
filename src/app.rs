//! The three commands: turns parsed arguments into engine configurations, runs the engines and
//! hands their results to the reports. Exit codes: 0 success, 1 a threshold was not met; every
//! `Err` is a usage or environment error, which `main` turns into exit code 2.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::auth::Key;
use crate::cli::{DemoArgs, DiscoverArgs, KeyArgs, Preset, ProbeArgs, RespondArgs};
use crate::diagnosis;
use crate::net::{self, Iface};
use crate::prober::{self, Outcome, ProbeConfig};
use crate::progress::{human, LiveProgress};
use crate::report::HostSummary;
use crate::report::{self, Findings, StreamedCsvs};
use crate::responder::{AllowList, Event, Responder, ResponderConfig};
use crate::stats::{format_id, IntervalRow, RawRow};
use crate::wire;

pub const EXIT_OK: i32 = 0;
pub const EXIT_THRESHOLD: i32 = 1;
/// With --hosts: some host gets unicast probes but not multicast ones.
pub const EXIT_MULTICAST_BROKEN: i32 = 3;

const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
const DEFAULT_OUTAGE_MIN: u64 = 3;
/// `--preset soak`: longer than two IGMP membership timeouts (2 × 260 s), so a LAN without a
/// querier shows its snooping switch dropping the group mid-run.
const SOAK_DURATION: Duration = Duration::from_secs(600);
const SOAK_INTERVAL: Duration = Duration::from_secs(1);

/// Writes to stdout; a closed pipe (`mcprobe … | head`) ends the program quietly.
fn stdout_or_exit(f: impl FnOnce(&mut io::StdoutLock) -> io::Result<()>) {
    let mut out = io::stdout().lock();
    if let Err(e) = f(&mut out).and_then(|()| out.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(EXIT_OK);
        }
        eprintln!("mcprobe: cannot write to stdout: {e}");
    }
}

pub(crate) fn key_of(args: &KeyArgs) -> Result<Option<Key>> {
    match (&args.key, &args.key_file) {
        (Some(k), _) => Key::from_secret(k.as_bytes()).map(Some).context("--key"),
        (None, Some(path)) => Key::from_file(path).map(Some),
        (None, None) => Ok(None),
    }
}

/// The hosts of `--hosts` and `--hosts-file` (one per line, `#` starts a comment), resolved to
/// addresses of the group's family, in order and without repeats.
pub(crate) fn expected_hosts(list: &[String], file: Option<&Path>, group: IpAddr) -> Result<Vec<IpAddr>> {
    let mut names: Vec<(String, &str)> = list.iter().map(|h| (h.trim().to_string(), "--hosts")).collect();
    if let Some(path) = file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("--hosts-file {}: cannot read", path.display()))?;
        let lines = text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty());
        names.extend(lines.map(|l| (l.to_string(), "--hosts-file")));
    }
    let mut hosts = Vec::new();
    for (name, flag) in names {
        let addr = resolve_host(&name, group.is_ipv6()).with_context(|| format!("{flag} {name}"))?;
        if !hosts.contains(&addr) {
            hosts.push(addr);
        }
    }
    Ok(hosts)
}

/// An address or a name, resolved to an IPv4 (or, with `v6`, IPv6) host address.
fn resolve_host(name: &str, v6: bool) -> Result<IpAddr> {
    use std::net::ToSocketAddrs;
    if name.is_empty() {
        bail!("an empty host name");
    }
    let family = if v6 { "IPv6" } else { "IPv4" };
    let addrs = (name, 0).to_socket_addrs().map_err(|e| anyhow::anyhow!("cannot resolve: {e}"))?;
    let ip = addrs.map(|a| a.ip()).find(|ip| ip.is_ipv6() == v6);
    match ip {
        Some(ip) if ip.is_multicast() || ip.is_unspecified() => bail!("{ip} is not a host address"),
        Some(IpAddr::V4(ip)) if ip.is_broadcast() => bail!("{ip} is not a host address"),
        Some(ip) => Ok(ip),
        None => bail!("no {family} address, the family of --group"),
    }
}

fn iface_of(spec: &Option<String>) -> Result<Option<Iface>> {
    spec.as_deref().map(net::resolve_iface).transpose()
}

pub(crate) fn iface_label(iface: &Option<Iface>) -> String {
    match iface {
        Some(Iface { name, addr: Some(a), .. }) => format!("{name} ({a})"),
        Some(Iface { name, .. }) => name.clone(),
        None => "the default interface".to_string(),
    }
}

/// `mcprobe respond`: answers probes until Ctrl-C.
pub fn respond(args: &RespondArgs, stop: &AtomicBool) -> Result<i32> {
    let group = net::check_group(args.net.group)?;
    let iface = iface_of(&args.net.iface)?;
    let name = match &args.name {
        Some(n) if n.len() > wire::MAX_NAME_LEN => {
            bail!("--name {n}: at most {} bytes", wire::MAX_NAME_LEN)
        }
        Some(n) => n.clone(),
        None => wire::truncate_utf8(&gethostname::gethostname().to_string_lossy(), wire::MAX_NAME_LEN).to_string(),
    };
    let cfg = ResponderConfig {
        group,
        source: args.source,
        port: args.net.port,
        iface: iface.clone(),
        name: name.clone(),
        reply_from: None,
        rcvbuf: args.net.rcvbuf,
        rate_limit: args.rate_limit,
        allow: AllowList(args.allow.clone()),
        key: key_of(&args.key)?,
        plain: args.plain,
    };
    let responder = Responder::bind(cfg)?;
    let quiet = args.quiet;
    let port = args.net.port;
    let counters = responder.run(stop, |ev| {
        if quiet {
            return;
        }
        let line = match ev {
            Event::Listening { id } => format!(
                "responder {name} (id {}) listening on {}{} via {}",
                format_id(*id),
                std::net::SocketAddr::new(group, port),
                args.source.map_or(String::new(), |s| format!(" from source {s}")),
                iface_label(&iface)
            ),
            Event::NewSession { session, from, ttl, arrival } => {
                format!("session {} from {from}: ttl {ttl}, {}", format_id(*session), arrival.as_str())
            }
        };
        stdout_or_exit(|out| writeln!(out, "{line}"));
    })?;
    if !quiet {
        let c = counters;
        stdout_or_exit(|out| {
            writeln!(
                out,
                "stopped: {} sessions, {} probes, {} acks sent; ignored {} invalid datagrams, {} other mcprobe messages, {} probes too small to answer, {} rate-limited, {} from sources not allowed, {} unauthenticated; {} send errors; {} local drops",
                c.sessions, c.probes, c.acks_sent, c.invalid, c.ignored, c.too_small, c.limited, c.denied, c.unauthenticated, c.send_errors, c.local_drops
            )
        });
    }
    Ok(EXIT_OK)
}

/// Probes per run and the interval between them, from --interval/--rate and --count/--duration.
fn schedule(args: &ProbeArgs) -> Result<(Duration, u64)> {
    let soak = args.preset == Some(Preset::Soak);
    let interval = match (args.interval, args.rate) {
        (Some(i), _) => i,
        (None, Some(r)) => Duration::from_secs_f64(1.0 / r),
        (None, None) if soak => SOAK_INTERVAL,
        (None, None) => DEFAULT_INTERVAL,
    };
    if interval.is_zero() {
        bail!("--rate: the interval between probes rounds to 0; use at most 1000000 probes/s");
    }
    let count = match args.count {
        Some(c) => c,
        None => {
            let d = args.duration.unwrap_or(if soak { SOAK_DURATION } else { DEFAULT_DURATION });
            ((d.as_secs_f64() / interval.as_secs_f64()).round() as u64).max(1)
        }
    };
    Ok((interval, count))
}

/// `mcprobe probe`.
pub fn probe(args: &ProbeArgs, stop: &AtomicBool) -> Result<i32> {
    let group = net::check_group(args.net.group)?;
    let iface = iface_of(&args.net.iface)?;
    let (interval, count) = schedule(args)?;
    let key = key_of(&args.key)?;
    let min_size = wire::MIN_PROBE_SIZE + if key.is_some() { wire::TAG_LEN } else { 0 };
    if (args.size as usize) < min_size && !args.plain {
        bail!("--size {}: keyed probes must be at least {min_size} bytes, room for a keyed ack", args.size);
    }
    let cfg = ProbeConfig {
        group,
        port: args.net.port,
        iface,
        ttl: args.ttl,
        size: args.size as usize,
        interval,
        schedule: args.schedule,
        count,
        timeout: args.timeout,
        report_interval: args.report_interval,
        raw: args.raw,
        intervals: args.out.is_some(),
        rcvbuf: args.net.rcvbuf,
        key,
        plain: args.plain.then(|| args.message.clone().into_bytes()),
        outage_min: args.outage_min,
        hosts: expected_hosts(&args.hosts, args.hosts_file.as_deref(), group)?,
    };
    let threshold = args.max_loss.unwrap_or(diagnosis::DEFAULT_THRESHOLD_PCT);
    let (outcome, found) = run_probe(&cfg, args.out.as_deref(), args.quiet, stop, threshold)?;
    stdout_or_exit(|out| {
        if args.json {
            return report::write_json(out, &found, &outcome);
        }
        report::write_table(out, &found.rows, &outcome)?;
        found.diagnosis.as_ref().map_or(Ok(()), |d| report::write_diagnosis(out, d))
    });
    let code = check_thresholds(&found.rows, args.max_loss, args.min_responders);
    Ok(match &found.diagnosis {
        Some(d) if d.multicast_broken() => EXIT_MULTICAST_BROKEN,
        Some(d) if d.failing() > 0 => EXIT_THRESHOLD,
        _ => code,
    })
}

/// Runs the prober with progress and writes the CSVs; shared by `probe` and `demo`.
fn run_probe(
    cfg: &ProbeConfig,
    out: Option<&Path>,
    quiet: bool,
    stop: &AtomicBool,
    threshold_pct: f64,
) -> Result<(Outcome, Findings)> {
    let streamed = match out {
        Some(dir) => {
            report::prepare_dir(dir)?;
            Some(Arc::new(Mutex::new(StreamedCsvs::create(dir, cfg.raw)?)))
        }
        None => None,
    };
    let sink = streamed.clone().map(|f| -> prober::RowSink {
        Box::new(move |raw: &[RawRow], intervals: &[IntervalRow]| {
            f.lock().unwrap_or_else(|e| e.into_inner()).write(raw, intervals)
        })
    });
    if !quiet {
        eprintln!(
            "probing {}:{} via {}: {} probes every {}, {} B, ttl {}; acks count as late after {}",
            cfg.group,
            cfg.port,
            iface_label(&cfg.iface),
            cfg.count,
            human(cfg.interval),
            cfg.plain.as_ref().map_or(cfg.size, Vec::len),
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
    let outcome = outcome?;
    let found = report::findings(&outcome, threshold_pct);
    if let (Some(dir), Some(files)) = (out, streamed) {
        let mut written = report::write_final_csvs(dir, &found.rows, &outcome.run)?;
        let files = Arc::into_inner(files).context("the report writer is still in use")?;
        written.extend(files.into_inner().unwrap_or_else(|e| e.into_inner()).commit()?);
        if !quiet {
            let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            eprintln!("wrote {}", names.join(", "));
        }
    }
    Ok((outcome, found))
}

/// Exit code from the thresholds, with a line on stderr for each one missed.
fn check_thresholds(rows: &[HostSummary], max_loss: Option<f64>, min_responders: Option<usize>) -> i32 {
    // Thresholds judge the multicast path; rows of expected hosts that never answered don't count
    // as responders (the diagnosis judges those).
    let rows: Vec<&HostSummary> = rows.iter().filter(|r| r.path == "multicast" && r.received > 0).collect();
    let mut code = EXIT_OK;
    if let Some(max) = max_loss {
        for r in rows.iter().filter(|r| r.loss_pct > max) {
            eprintln!("mcprobe: {} ({}) lost {:.3}% > --max-loss {max}", r.responder, r.address, r.loss_pct);
            code = EXIT_THRESHOLD;
        }
    }
    if let Some(min) = min_responders {
        if rows.len() < min {
            eprintln!("mcprobe: {} responders answered < --min-responders {min}", rows.len());
            code = EXIT_THRESHOLD;
        }
    }
    code
}

/// `mcprobe discover`: a burst of probes 20 ms apart, a short wait, the responders that answered.
pub fn discover(args: &DiscoverArgs, stop: &AtomicBool) -> Result<i32> {
    let key = key_of(&args.key)?;
    let cfg = ProbeConfig {
        group: net::check_group(args.net.group)?,
        port: args.net.port,
        iface: iface_of(&args.net.iface)?,
        ttl: args.ttl,
        size: 128,
        interval: Duration::from_millis(20),
        schedule: prober::Schedule::Fixed,
        count: args.count,
        timeout: args.wait,
        report_interval: Duration::from_secs(1),
        raw: false,
        intervals: false,
        rcvbuf: args.net.rcvbuf,
        key,
        plain: None,
        outage_min: DEFAULT_OUTAGE_MIN,
        hosts: Vec::new(),
    };
    let outcome = prober::run(&cfg, stop, None, |_| {})?;
    let found = report::findings(&outcome, diagnosis::DEFAULT_THRESHOLD_PCT);
    stdout_or_exit(|out| {
        if args.json {
            report::write_json(out, &found, &outcome)
        } else {
            report::write_census(out, &found.rows)
        }
    });
    Ok(check_thresholds(&found.rows, None, args.min_responders))
}

/// `mcprobe demo`: N responders on loopback, a short probe, the table and the CSVs.
pub fn demo(args: &DemoArgs, stop: &AtomicBool) -> Result<i32> {
    let lo = net::resolve_iface("127.0.0.1")?;
    let group: IpAddr = crate::cli::DEFAULT_GROUP.parse().expect("the default group is valid");
    // A port of our own, so the demo never meets a real responder of this host.
    let port = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
    let out = match &args.out {
        Some(d) => d.clone(),
        None => demo_dir(),
    };
    let responders_stop = AtomicBool::new(false);
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let cfg = ProbeConfig {
        group,
        port,
        iface: Some(lo.clone()),
        ttl: 1,
        size: 128,
        interval,
        schedule: prober::Schedule::Fixed,
        count: ((args.duration.as_secs_f64() * args.rate).round() as u64).max(1),
        timeout: Duration::from_millis(500),
        report_interval: Duration::from_secs(1),
        raw: false,
        intervals: true,
        rcvbuf: net::DEFAULT_RCVBUF,
        key: None,
        plain: None,
        outage_min: DEFAULT_OUTAGE_MIN,
        hosts: Vec::new(),
    };
    let outcome = std::thread::scope(|s| -> Result<(Outcome, Findings)> {
        let mut handles = Vec::new();
        for i in 0..args.responders {
            // Each demo "host" answers from its own loopback address, 127.0.0.2 and up.
            let r = Responder::bind(ResponderConfig {
                group,
                source: None,
                port,
                iface: Some(lo.clone()),
                name: format!("demo-{}", i + 1),
                reply_from: Some(Ipv4Addr::new(127, 0, 0, i + 2)),
                rcvbuf: net::DEFAULT_RCVBUF,
                rate_limit: crate::responder::DEFAULT_RATE_LIMIT,
                allow: AllowList::default(),
                key: None,
                plain: false,
            })?;
            let stop_r = &responders_stop;
            handles.push(s.spawn(move || r.run(stop_r, |_| {})));
        }
        if !args.quiet {
            eprintln!("started {} responders on loopback (127.0.0.2–127.0.0.{})", args.responders, args.responders + 1);
        }
        let result = run_probe(&cfg, Some(&out), args.quiet, stop, diagnosis::DEFAULT_THRESHOLD_PCT);
        responders_stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a demo responder panicked"))??;
        }
        result
    })?;
    let (outcome, found) = outcome;
    stdout_or_exit(|o| report::write_table(o, &found.rows, &outcome));
    Ok(EXIT_OK)
}

fn demo_dir() -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    std::env::temp_dir().join(format!("mcprobe-demo-{secs}"))
}
