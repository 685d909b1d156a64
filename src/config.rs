//! From parsed arguments ([`crate::cli`]) to validated engine configurations, in one place.
//!
//! Every rule about how flags combine lives here, with a unit test each (trippy's `build_config`
//! is the model): the commands in [`crate::app`] only run what this module built. Errors name the
//! flag and the value, and become exit code 2.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::auth::Key;
use crate::cli::ack_port::AckPortArgs;
use crate::cli::{DiscoverArgs, KeyArgs, Preset, ProbeArgs, RespondArgs, ScheduleArg};
use crate::findings::{Judgement, Thresholds, DEFAULT_THRESHOLD_PCT};
use crate::net::{self, Iface};
use crate::prober::{ProbeConfig, Schedule};
use crate::responder::{check_max_clock_skew, AllowList, ResponderConfig};
use crate::wire;

pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
pub(crate) const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// `--preset soak`: longer than two IGMP membership timeouts (2 × 260 s), so a LAN without a
/// querier shows its snooping switch dropping the group mid-run.
pub(crate) const SOAK_DURATION: Duration = Duration::from_secs(600);
pub(crate) const SOAK_INTERVAL: Duration = Duration::from_secs(1);

/// A probe configuration with every optional setting at its default (the engine's own,
/// [`ProbeConfig::new`]), on `iface`.
pub fn probe_defaults(group: IpAddr, port: u16, iface: Option<Iface>) -> ProbeConfig {
    ProbeConfig { iface, ..ProbeConfig::new(group, port) }
}

/// A responder configuration with every optional setting at its default: the one literal of it.
pub(crate) fn responder_defaults(group: IpAddr, port: u16, iface: Option<Iface>, name: String) -> ResponderConfig {
    ResponderConfig {
        group,
        source: None,
        port,
        iface,
        name,
        reply_from: None,
        rcvbuf: net::DEFAULT_RCVBUF,
        rate_limit: crate::responder::DEFAULT_RATE_LIMIT,
        total_rate_limit: crate::responder::DEFAULT_TOTAL_RATE_LIMIT,
        max_clock_skew: Duration::from_nanos(crate::responder::DEFAULT_MAX_CLOCK_SKEW_NS),
        allow: AllowList::default(),
        key: None,
        plain: false,
        tap: false,
    }
}

/// What `probe` runs, and how its result is judged and written.
#[derive(Debug)]
pub(crate) struct ProbeSetup {
    pub probe: ProbeConfig,
    pub out: Option<PathBuf>,
    pub judgement: Judgement,
    pub thresholds: Thresholds,
    pub json: bool,
    /// Also write report.html into the `--out` folder.
    pub html: bool,
    pub quiet: bool,
    /// `--querier-wait`: the silence of queriers that is reported (`None`: their interval + 10 s).
    pub querier_wait: Option<Duration>,
}

pub(crate) fn probe(args: &ProbeArgs) -> Result<ProbeSetup> {
    let group = net::check_group(args.net.group)?;
    let iface = iface_of(&args.net.iface)?;
    let (interval, count) = schedule(args)?;
    let key = key_of(&args.key)?;
    let min_size = wire::MIN_PROBE_SIZE + if key.is_some() { wire::TAG_LEN } else { 0 };
    if (args.size as usize) < min_size && !args.plain {
        bail!("--size {}: keyed probes must be at least {min_size} bytes, room for a keyed ack", args.size);
    }
    if let Some(dir) = &args.out {
        check_out_dir(dir)?;
    }
    let keyed = key.is_some();
    let hosts = expected_hosts(&args.hosts, args.hosts_file.as_deref(), group)?;
    let probe = ProbeConfig {
        ack_port: ack_port(args.ack, args.net.port, hosts.len(), 1)?,
        ttl: args.ttl,
        size: args.size as usize,
        interval,
        schedule: match args.schedule {
            ScheduleArg::Fixed => Schedule::Fixed,
            ScheduleArg::Poisson => Schedule::Poisson,
        },
        count,
        timeout: args.timeout,
        report_interval: args.report_interval,
        raw: args.raw,
        intervals: args.out.is_some(),
        rcvbuf: args.net.rcvbuf,
        key,
        plain: args.plain.then(|| args.message.clone().into_bytes()),
        outage_min: args.outage_min,
        hosts,
        ..probe_defaults(group, args.net.port, iface)
    };
    Ok(ProbeSetup {
        probe,
        out: args.out.clone(),
        judgement: Judgement {
            threshold_pct: args.max_loss.unwrap_or(DEFAULT_THRESHOLD_PCT),
            group: SocketAddr::new(group, args.net.port),
            keyed,
        },
        thresholds: Thresholds { max_loss_pct: args.max_loss, min_responders: args.min_responders },
        json: args.json,
        html: args.html,
        quiet: args.quiet,
        querier_wait: args.querier_wait,
    })
}

/// What `discover` runs: a burst of probes 20 ms apart and a short wait.
pub(crate) fn discover(args: &DiscoverArgs) -> Result<(ProbeConfig, Judgement, Thresholds)> {
    let group = net::check_group(args.net.group)?;
    let key = key_of(&args.key)?;
    let judgement = Judgement {
        threshold_pct: DEFAULT_THRESHOLD_PCT,
        group: SocketAddr::new(group, args.net.port),
        keyed: key.is_some(),
    };
    let cfg = ProbeConfig {
        ttl: args.ttl,
        interval: Duration::from_millis(20),
        count: args.count,
        timeout: args.timeout,
        rcvbuf: args.net.rcvbuf,
        key,
        ack_port: ack_port(args.ack, args.net.port, 0, 1)?,
        ..probe_defaults(group, args.net.port, iface_of(&args.net.iface)?)
    };
    Ok((cfg, judgement, Thresholds { max_loss_pct: None, min_responders: args.min_responders }))
}

/// What `respond` runs.
pub(crate) fn respond(args: &RespondArgs) -> Result<ResponderConfig> {
    let name = match &args.name {
        Some(n) if n.len() > wire::MAX_NAME_LEN => bail!("--name {n}: at most {} bytes", wire::MAX_NAME_LEN),
        Some(n) if n.is_empty() => bail!("--name: an empty name; leave it out to use the host name"),
        Some(n) => n.clone(),
        None => wire::truncate_utf8(&gethostname::gethostname().to_string_lossy(), wire::MAX_NAME_LEN).to_string(),
    };
    let group = net::check_group(args.net.group)?;
    Ok(ResponderConfig {
        source: args.source,
        rcvbuf: args.net.rcvbuf,
        rate_limit: args.rate_limit,
        total_rate_limit: args.total_rate_limit,
        max_clock_skew: check_max_clock_skew(args.max_clock_skew)?,
        allow: AllowList(args.allow.clone()),
        key: key_of(&args.key)?,
        plain: args.plain,
        tap: true,
        ..responder_defaults(group, args.net.port, iface_of(&args.net.iface)?, name)
    })
}

/// `--ack-port`: not the group's port (responders listen there), and with the `hosts` unicast
/// ports after it, in `blocks` blocks (`serve` alternates two), all below 65536.
pub(crate) fn ack_port(args: AckPortArgs, port: u16, hosts: usize, blocks: usize) -> Result<Option<u16>> {
    check_ack_port(args.ack_port, "--ack-port", port, hosts, blocks).map_err(|e| anyhow::anyhow!("{e}"))
}

/// [`ack_port`] for a setting named `what` (a flag, or a field of `serve`'s file).
pub(crate) fn check_ack_port(
    ack: Option<u16>,
    what: &str,
    port: u16,
    hosts: usize,
    blocks: usize,
) -> Result<Option<u16>, String> {
    let Some(ack) = ack else { return Ok(None) };
    if ack == port {
        let other = if ack == u16::MAX { ack - 1 } else { ack + 1 };
        return Err(format!("{what} {ack}: the same as --port, where responders listen; pick another (e.g. {other})"));
    }
    let last = usize::from(ack) + blocks * (hosts + 1) - 1;
    if last > usize::from(u16::MAX) {
        let with = if hosts > 0 { format!(" with {hosts} --hosts") } else { String::new() };
        return Err(format!(
            "{what} {ack}: takes ports {ack}-{last}{with}, beyond 65535; pick a port of at most {}",
            usize::from(u16::MAX) + 1 - blocks * (hosts + 1)
        ));
    }
    if (usize::from(ack)..=last).contains(&usize::from(port)) {
        return Err(format!(
            "{what} {ack}: its ports {ack}-{last} include --port {port}, where responders listen; pick another"
        ));
    }
    Ok(Some(ack))
}

pub(crate) fn key_of(args: &KeyArgs) -> Result<Option<Key>> {
    match (&args.key, &args.key_file) {
        (Some(k), _) => Key::from_secret(k.as_bytes()).map(Some).context("--key"),
        (None, Some(path)) => Key::from_file(path).map(Some),
        (None, None) => Ok(None),
    }
}

fn iface_of(spec: &Option<String>) -> Result<Option<Iface>> {
    spec.as_deref().map(net::resolve_iface).transpose()
}

/// Probes per run and the interval between them, from --interval/--rate, --count/--duration and
/// --preset.
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

/// `--out` must be a folder, or a path where one can be made.
fn check_out_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => bail!("--out {}: is a file, not a folder", dir.display()),
        _ => Ok(()),
    }
}

/// Where an expected host was named, for error messages.
enum Origin<'a> {
    Flag,
    File(&'a Path, usize),
}

/// The hosts of `--hosts` and `--hosts-file` (one per line, `#` starts a comment), resolved to
/// addresses of the group's family, in order and without repeats.
pub(crate) fn expected_hosts(list: &[String], file: Option<&Path>, group: IpAddr) -> Result<Vec<IpAddr>> {
    let text = match file {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("--hosts-file {}: cannot read", path.display()))?,
        ),
        None => None,
    };
    let mut names: Vec<(String, Origin)> = list.iter().map(|h| (h.trim().to_string(), Origin::Flag)).collect();
    if let (Some(path), Some(text)) = (file, &text) {
        let before = names.len();
        for (i, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if !entry.is_empty() {
                names.push((entry.to_string(), Origin::File(path, i + 1)));
            }
        }
        if names.len() == before {
            bail!("--hosts-file {}: lists no host (one address or name per line)", path.display());
        }
    }
    let mut hosts = Vec::new();
    for (name, origin) in names {
        let addr = resolve_host(&name, group.is_ipv6()).with_context(|| match origin {
            Origin::Flag => format!("--hosts {name}"),
            Origin::File(path, line) => format!("--hosts-file {}:{line}: {name}", path.display()),
        })?;
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

#[cfg(test)]
mod tests;
