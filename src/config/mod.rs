//! From parsed arguments ([`crate::cli`]) to validated engine configurations, in one place.
//!
//! Every rule about a flag lives here once, per flag group (the group, the key, how probes are
//! sent, paced and bounded, the hosts, the outputs, the name), with a unit test each (trippy's
//! `build_config` is the model); each command's configuration is made of those. The commands in
//! [`crate::commands`] only run what this module built. Errors name the flag and the value, and
//! become exit code 2.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::auth::Key;
use crate::cli::doctor::{DoctorArgs, RoleArg as DoctorRole};
use crate::cli::*;
use crate::doctor::{Role, Setup};
use crate::findings::{Judgement, Thresholds, DEFAULT_THRESHOLD_PCT};
use crate::maxrate::driver::MaxRateConfig;
use crate::maxrate::search::SearchConfig;
use crate::net::{self, Iface};
use crate::prober::{Pacing, ProbeConfig, Schedule};
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
        groups: vec![group],
        source: None,
        port,
        iface,
        name,
        reply_from: None,
        rcvbuf: net::DEFAULT_RCVBUF,
        rate_limit: DEFAULT_RATE_LIMIT,
        total_rate_limit: DEFAULT_TOTAL_RATE_LIMIT,
        max_clock_skew: Duration::from_nanos(crate::responder::DEFAULT_MAX_CLOCK_SKEW_NS),
        allow: AllowList::default(),
        key: None,
        plain: false,
        tap: false,
        churn: None,
        ramp: None,
        ack_trains: false,
    }
}

/// What a measuring command writes and prints (`--out`, `--json`, `--quiet`, `--no-html`,
/// `--force`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Output {
    pub out: Option<PathBuf>,
    /// report.html in the `--out` folder (all but `--no-html`).
    pub html: bool,
    /// Write into a folder that holds files mcprobe did not write.
    pub force: bool,
    pub json: bool,
    pub quiet: bool,
}

pub(crate) fn output(a: &OutputArgs) -> Result<Output> {
    if let Some(dir) = &a.out {
        check_out_dir(dir)?;
    }
    Ok(Output { out: a.out.clone(), html: !a.no_html, force: a.force, json: a.json, quiet: a.quiet })
}

/// The group, port and interface: a multicast group, and an interface of its family (the
/// route's when `--iface` is not given, so every output can name it).
pub(crate) fn group(a: &GroupArgs) -> Result<(IpAddr, u16, Option<Iface>)> {
    let group = net::check_group(a.group)?;
    let iface = match &a.iface {
        Some(spec) => {
            let i = net::resolve_iface(spec)?;
            i.check_family(group)?;
            Some(i)
        }
        None => net::route_iface(group)?,
    };
    // Refused here, before the run names its interface or opens a socket (lo, which has no IPv6
    // multicast, is refused when the socket joins, after --source's family is checked).
    if let (IpAddr::V6(g), None) = (group, &iface) {
        net::need_v6_iface(None, g)?;
    }
    Ok((group, a.port, iface))
}

/// `--group`, or every group of `--groups`: the first one stands for all where one is needed
/// (the route that picks the interface when `--iface` is not given, the interface line).
pub(crate) fn groups(a: &GroupArgs, g: &GroupsArgs) -> Result<(Vec<IpAddr>, u16, Option<Iface>)> {
    let Some(list) = &g.groups else {
        let (group, port, iface) = group(a)?;
        return Ok((vec![group], port, iface));
    };
    for &x in &list.groups {
        net::check_group_of("--groups", x)?;
    }
    let (_, port, iface) = group(&GroupArgs { group: list.groups[0], port: list.port.unwrap_or(a.port), ..a.clone() })?;
    Ok((list.groups.clone(), port, iface))
}

/// `--ack-port`: not the group's port (responders listen there), and with the `hosts` unicast
/// ports after it, in `blocks` blocks (`serve` alternates two), all below 65536.
pub(crate) fn ack_port(ack: Option<u16>, port: u16, hosts: usize, blocks: usize) -> Result<Option<u16>> {
    check_ack_port(ack, "--ack-port", port, hosts, blocks).map_err(|e| anyhow::anyhow!("{e}"))
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

/// `--size` leaves room for an ack: 64 bytes, and the tag on top when keyed.
pub(crate) fn check_size(size: u16, keyed: bool) -> Result<usize> {
    let min_size = wire::MIN_PROBE_SIZE + if keyed { wire::TAG_LEN } else { 0 };
    if (size as usize) < min_size {
        bail!("--size {size}: keyed probes must be at least {min_size} bytes, room for a keyed ack");
    }
    Ok(size as usize)
}

/// The interval between probes: `--interval`, else 1/`--rate`, else `default`.
pub(crate) fn interval(a: &PaceArgs, default: Duration) -> Result<Duration> {
    let interval = match (a.interval, a.rate) {
        (Some(i), _) => i,
        (None, Some(r)) => Duration::from_secs_f64(1.0 / r),
        (None, None) => default,
    };
    if interval.is_zero() {
        bail!("--rate: the interval between probes rounds to 0; use at most 1000000 probes/s");
    }
    Ok(interval)
}

/// How many probes, and when sending stops: `--count` probes (no deadline), or as many as
/// `--duration` (else `default`) holds at `interval`, sent until that deadline and no later.
pub(crate) fn length(a: &LengthArgs, interval: Duration, default: Duration) -> Result<(u64, Option<Duration>)> {
    Ok(match a.count {
        Some(c) => (c, None),
        None => {
            let d = a.duration.unwrap_or(default);
            let count = (d.as_secs_f64() / interval.as_secs_f64()).round();
            if count > 1e12 {
                bail!("--duration {}: more than 10^12 probes at this rate", humantime::format_duration(d));
            }
            ((count as u64).max(1), Some(d))
        }
    })
}

/// A responder's name (`--name`): printable, 1 to 64 bytes; the host name by default.
pub(crate) fn name(a: &NameArgs) -> Result<String> {
    match &a.name {
        Some(n) if n.len() > wire::MAX_NAME_LEN => bail!("--name {n}: at most {} bytes", wire::MAX_NAME_LEN),
        Some(n) if n.is_empty() => bail!("--name: an empty name; leave it out to use the host name"),
        Some(n) if n.chars().any(char::is_control) => {
            bail!("--name {}: control characters (newlines, tabs, escapes) are not allowed in a name", n.escape_debug())
        }
        Some(n) => Ok(n.clone()),
        None => {
            let host = gethostname::gethostname().to_string_lossy().replace(char::is_control, "?");
            Ok(wire::truncate_utf8(&host, wire::MAX_NAME_LEN).to_string())
        }
    }
}

/// The thresholds a run is judged by, and the loss that makes a path bad in the verdicts.
pub(crate) fn thresholds(loss: &LossArgs, min: Option<&MinArgs>) -> Thresholds {
    Thresholds {
        max_loss_pct: loss.max_loss,
        min_responders: min.and_then(|m| m.min_responders),
        min_hosts: min.and_then(|m| m.min_hosts),
    }
}

/// What `probe` (and `demo`, `discover` and `mesh`, which probe too) runs, and how its result is
/// judged and written.
#[derive(Debug)]
pub(crate) struct ProbeSetup {
    pub probe: ProbeConfig,
    pub output: Output,
    pub judgement: Judgement,
    pub thresholds: Thresholds,
    /// `--querier-wait`: the silence of queriers that is reported (`None`: their interval + 10 s).
    pub querier_wait: Option<Duration>,
    /// The name this host gives itself (`mesh --name`), for its report folder.
    pub name: Option<String>,
    /// `probe --realtime`: SCHED_FIFO and locked memory for the run.
    pub realtime: bool,
}

pub(crate) fn probe(args: &ProbeArgs) -> Result<ProbeSetup> {
    if args.plain.plain && !args.hosts.is_empty() {
        bail!("--plain: the lab's protocol has no sessions to tell unicast from multicast answers; leave out --hosts");
    }
    let (groups, port, iface) = groups(&args.net, &args.groups)?;
    let group = groups[0];
    if args.plain.plain && groups.len() > 1 {
        bail!("--plain: the lab's replies do not say which group a probe came by; probe one --group");
    }
    let key = key_of(&args.key)?;
    let size = if args.plain.plain { args.send.size as usize } else { check_size(args.send.size, key.is_some())? };
    let soak = args.preset == Some(Preset::Soak);
    let interval = interval(&args.pace, if soak { SOAK_INTERVAL } else { DEFAULT_INTERVAL })?;
    let (count, deadline) = length(&args.length, interval, if soak { SOAK_DURATION } else { DEFAULT_DURATION })?;
    let output = output(&args.output)?;
    let keyed = key.is_some();
    let hosts = expected_hosts(&args.hosts, group)?;
    let probe = ProbeConfig {
        ack_port: ack_port(args.send.ack_port, port, hosts.len(), 1)?,
        ttl: args.send.ttl,
        size,
        interval,
        schedule: match args.schedule {
            ScheduleArg::Fixed => Schedule::Fixed,
            ScheduleArg::Poisson => Schedule::Poisson,
        },
        pacing: match args.pacing {
            PacingArg::Auto => Pacing::Auto,
            PacingArg::Lean => Pacing::Lean,
            PacingArg::Precise => Pacing::Precise,
        },
        count,
        deadline,
        timeout: args.send.timeout,
        report_interval: args.report_interval,
        raw: args.raw,
        intervals: output.out.is_some(),
        rcvbuf: args.net.rcvbuf,
        key,
        plain: args.plain.plain.then(|| args.message.clone().into_bytes()),
        outage_min: args.outage_min,
        hosts,
        groups,
        ..probe_defaults(group, port, iface)
    };
    Ok(ProbeSetup {
        realtime: args.realtime,
        probe,
        output,
        judgement: Judgement::new(
            args.loss.max_loss.unwrap_or(DEFAULT_THRESHOLD_PCT),
            SocketAddr::new(group, port),
            keyed,
        ),
        thresholds: thresholds(&args.loss, Some(&args.min)),
        querier_wait: args.querier.querier_wait,
        name: None,
    })
}

/// What `discover` runs: a burst of probes 20 ms apart and a short wait.
pub(crate) fn discover(args: &DiscoverArgs) -> Result<ProbeSetup> {
    let (group, port, iface) = group(&args.net)?;
    let key = key_of(&args.key)?;
    let size = check_size(args.send.size, key.is_some())?;
    let interval = Duration::from_millis(20);
    // clap gives --duration its default (100 ms: 5 probes); --count, when given, wins. A census
    // sends its probes whatever the machine's stalls: no deadline cuts the last one.
    let (count, asked) = length(&args.length, interval, interval)?;
    if count > 1000 {
        match asked {
            Some(d) => bail!(
                "--duration {}: a census sends at most 1000 probes (20 s at its 20 ms); use `probe` for longer runs",
                humantime::format_duration(d)
            ),
            None => bail!("--count {count}: a census sends at most 1000 probes; use `probe` for longer runs"),
        }
    }
    let output = output(&args.output)?;
    let judgement = Judgement::new(DEFAULT_THRESHOLD_PCT, SocketAddr::new(group, port), key.is_some());
    let probe = ProbeConfig {
        ttl: args.send.ttl,
        size,
        interval,
        count,
        deadline: None,
        timeout: args.send.timeout,
        rcvbuf: args.net.rcvbuf,
        intervals: output.out.is_some(),
        key,
        ack_port: ack_port(args.send.ack_port, port, 0, 1)?,
        ..probe_defaults(group, port, iface)
    };
    let thresholds = thresholds(&LossArgs { max_loss: None }, Some(&args.min));
    Ok(ProbeSetup { probe, output, judgement, thresholds, querier_wait: None, name: None, realtime: false })
}

/// `--ramp` and `--canary`: the canary must be a group of the list's family the responder never
/// joins.
fn ramp(a: &RampArgs, groups: &[IpAddr]) -> Result<Option<crate::responder::RampSpec>> {
    let Some((step, period)) = a.ramp else {
        if let Some(c) = a.canary.canary {
            bail!("--canary {c}: only with --ramp (the responder's side of max-groups)");
        }
        return Ok(None);
    };
    let canary = match a.canary.canary {
        Some(c) => net::check_group_of("--canary", c)?,
        None => crate::maxgroups::default_canary(groups).with_context(|| {
            "--ramp: the address after the highest of --groups is not a multicast group; name one with --canary"
        })?,
    };
    if groups.contains(&canary) {
        bail!("--canary {canary}: it is in --groups; the canary must be a group nobody joins");
    }
    if canary.is_ipv6() != groups[0].is_ipv6() {
        bail!("--canary {canary}: not of the same family as --groups");
    }
    Ok(Some(crate::responder::RampSpec { step, period, canary }))
}

/// What `respond` runs.
pub(crate) fn respond(args: &RespondArgs) -> Result<ResponderConfig> {
    let name = name(&args.name)?;
    let (groups, port, iface) = groups(&args.net, &args.groups)?;
    if args.plain.plain && groups.len() > 1 {
        bail!("--plain: the lab's replies do not say which group a probe came by; answer one --group");
    }
    let group = groups[0];
    let churn = args.churn.map(|p| check_churn(p, args, groups.len())).transpose()?;
    let ramp = ramp(&args.ramp, &groups)?;
    Ok(ResponderConfig {
        churn,
        ramp,
        groups,
        source: args.source,
        rcvbuf: args.net.rcvbuf,
        rate_limit: args.rate_limit,
        total_rate_limit: args.total_rate_limit,
        max_clock_skew: check_max_clock_skew(args.max_clock_skew)?,
        allow: AllowList(args.allow.clone()),
        key: key_of(&args.key)?,
        plain: args.plain.plain,
        tap: true,
        ack_trains: args.ack_trains,
        ..responder_defaults(group, port, iface, name)
    })
}

/// `--churn PERIOD`: over two groups or more, between 100 ms and an hour; not with `--plain`
/// (no acks to carry the delays), `--source` (source-specific leaves are not scheduled yet) or
/// `--ramp`.
fn check_churn(period: Duration, args: &RespondArgs, groups: usize) -> Result<Duration> {
    let p = humantime::format_duration(period);
    if groups < 2 {
        bail!("--churn {p}: --groups has one group, which would be left (and unanswered) half the time; churn a list of groups");
    }
    if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&period) {
        bail!("--churn {p}: between 100ms and 1h (half of it must exceed the LAN's leave delay, a few seconds with the usual querier settings)");
    }
    if args.plain.plain {
        bail!("--churn {p}: --plain replies carry no join or leave delays; leave out --plain");
    }
    if let Some(s) = args.source {
        bail!("--churn {p}: not with --source {s} (source-specific leaves are not scheduled); leave out one of them");
    }
    if args.ramp.ramp.is_some() {
        bail!("--churn {p}: not with --ramp (a capacity search joins its groups once, a step at a time); leave out one of them");
    }
    Ok(period)
}

/// What `demo` runs: its own port on loopback, so it never meets a real responder of this host.
pub(crate) fn demo(args: &DemoArgs, port: u16) -> Result<ProbeSetup> {
    let lo = net::resolve_iface("127.0.0.1")?;
    let group: IpAddr = DEFAULT_GROUP.parse().expect("the default group is valid");
    let interval = interval(&args.pace, DEFAULT_INTERVAL)?;
    let (count, deadline) = length(&args.length, interval, DEFAULT_DURATION)?;
    let output = output(&args.output)?;
    let probe = ProbeConfig {
        interval,
        count,
        deadline,
        timeout: Duration::from_millis(250),
        intervals: true,
        ..probe_defaults(group, port, Some(lo))
    };
    let judgement = Judgement::new(DEFAULT_THRESHOLD_PCT, SocketAddr::new(group, port), false);
    Ok(ProbeSetup {
        probe,
        output,
        judgement,
        thresholds: Thresholds::default(),
        querier_wait: None,
        name: None,
        realtime: false,
    })
}

/// What `max-rate` runs.
pub(crate) fn max_rate(args: &MaxRateArgs) -> Result<(MaxRateConfig, Output)> {
    let (group, port, iface) = group(&args.net)?;
    let key = key_of(&args.key)?;
    let size = check_size(args.send.size, key.is_some())?;
    let (start, max) = (args.start.round() as u64, args.max.round() as u64);
    if start < 1 || max < 1 {
        bail!("--start {} / --max {}: rates of at least 1 probe/s", args.start, args.max);
    }
    if start > max {
        bail!("--start {start}: above --max {max}");
    }
    if let Some(m) = args.min_rate.filter(|&m| m.round() as u64 > max) {
        bail!("--min-rate {m}: above --max {max}, so every responder would miss it; the search never tries past --max");
    }
    let output = output(&args.output)?;
    let probe = ProbeConfig {
        ttl: args.send.ttl,
        size,
        timeout: args.send.timeout,
        rcvbuf: args.net.rcvbuf,
        key,
        ack_port: ack_port(args.send.ack_port, port, 0, 1)?,
        ..probe_defaults(group, port, iface)
    };
    // Below the floor a responder is not searched further: --min-rate when given (below it the
    // answer is "too slow" anyway), else a tenth of the start.
    let floor = args.min_rate.map_or(start / 10, |m| m.round() as u64).clamp(1, start);
    let cfg = MaxRateConfig {
        probe,
        search: SearchConfig { start, max, factor: 2.0, resolution: args.resolution / 100.0, floor },
        trial: args.trial,
        tolerance_pct: args.loss.max_loss.unwrap_or(0.0),
        max_trials: args.max_trials,
        min_rate: args.min_rate,
    };
    Ok((cfg, output))
}

/// What `max-groups` runs: the range and the canary after it, probed round robin.
pub(crate) fn max_groups(args: &MaxGroupsArgs) -> Result<crate::maxgroups::driver::MaxGroupsConfig> {
    if args.groups.groups.is_none() {
        bail!("max-groups needs --groups: the list the responders ramp (respond --groups LIST --ramp STEP/PERIOD)");
    }
    let (mut groups, port, iface) = groups(&args.net, &args.groups)?;
    let range = groups.len();
    let canary = match args.canary.canary {
        Some(c) => net::check_group_of("--canary", c)?,
        None => crate::maxgroups::default_canary(&groups).with_context(|| {
            "the address after the highest of --groups is not a multicast group; name a canary with --canary"
        })?,
    };
    if groups.contains(&canary) {
        bail!("--canary {canary}: it is in --groups; the canary must be a group nobody joins");
    }
    if canary.is_ipv6() != groups[0].is_ipv6() {
        bail!("--canary {canary}: not of the same family as --groups");
    }
    if let Some(n) = args.min_groups.filter(|&n| n as usize > range) {
        bail!("--min-groups {n}: --groups has {range}, so no responder can reach it");
    }
    groups.push(canary);
    let key = key_of(&args.key)?;
    // Room in every ack for the memberships record and the whole name.
    let size = wire::ACK_FIXED_LEN + 1 + wire::EXT_MEMBERSHIPS_LEN + 1 + wire::MAX_NAME_LEN;
    let size = size + if key.is_some() { wire::TAG_LEN } else { 0 };
    let probe = ProbeConfig {
        ttl: args.ttl,
        size,
        rcvbuf: args.net.rcvbuf,
        key,
        groups,
        // Short: a step's late acks only cost its next step's start.
        timeout: Duration::from_millis(250),
        ..probe_defaults(groups_first(&args.groups), port, iface)
    };
    Ok(crate::maxgroups::driver::MaxGroupsConfig {
        probe,
        range,
        step: args.step,
        rounds: args.rounds,
        max_steps: args.max_steps,
        judge: crate::maxgroups::judge::JudgeConfig { confirm: args.confirm, ..Default::default() },
    })
}

fn groups_first(g: &GroupsArgs) -> IpAddr {
    g.groups.as_ref().map(|l| l.groups[0]).expect("checked")
}

/// What `mesh` runs: this host's responder and its prober of the peers.
pub(crate) struct MeshSetup {
    pub probe: ProbeSetup,
    pub responder: ResponderConfig,
    /// This host's address among `--hosts`, and the others.
    pub me: IpAddr,
    pub peers: Vec<IpAddr>,
    pub name: String,
    pub linger: Duration,
}

pub(crate) fn mesh(args: &MeshArgs) -> Result<MeshSetup> {
    if args.hosts.is_empty() {
        bail!("--hosts: a mesh needs the list of its hosts, this one included (or --hosts-file)");
    }
    let (group, port, iface) = group(&args.net)?;
    let hosts = expected_hosts(&args.hosts, group)?;
    let local = net::local_addrs()?;
    let (mine, peers): (Vec<IpAddr>, Vec<IpAddr>) = hosts.iter().partition(|h| local.contains(h));
    let Some(&me) = mine.first() else {
        let list: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        bail!(
            "--hosts {}: none of them is an address of this host; list every host of the mesh, this one included",
            list.join(",")
        );
    };
    if peers.is_empty() {
        bail!("--hosts: lists only this host ({me}); a mesh needs at least one peer");
    }
    let name = name(&args.name)?;
    let key = key_of(&args.key)?;
    let size = check_size(args.send.size, key.is_some())?;
    let interval = interval(&args.pace, DEFAULT_INTERVAL)?;
    let (count, deadline) = length(&args.length, interval, DEFAULT_DURATION)?;
    let output = output(&args.output)?;
    let keyed = key.is_some();
    let probe = ProbeConfig {
        ttl: args.send.ttl,
        size,
        interval,
        count,
        deadline,
        timeout: args.send.timeout,
        intervals: output.out.is_some(),
        rcvbuf: args.net.rcvbuf,
        key: key.clone(),
        hosts: peers.clone(),
        ack_port: ack_port(args.send.ack_port, port, peers.len(), 1)?,
        ..probe_defaults(group, port, iface.clone())
    };
    // Every peer probes at --rate on two paths; the default limits are far above a mesh's rate.
    let responder =
        ResponderConfig { rcvbuf: args.net.rcvbuf, key, ..responder_defaults(group, port, iface, name.clone()) };
    let threshold_pct = args.loss.max_loss.unwrap_or(DEFAULT_THRESHOLD_PCT);
    let probe = ProbeSetup {
        probe,
        output,
        judgement: Judgement {
            from_first_answer: true,
            ..Judgement::new(threshold_pct, SocketAddr::new(group, port), keyed)
        },
        thresholds: thresholds(&args.loss, None),
        querier_wait: None,
        name: Some(name.clone()),
        realtime: false,
    };
    Ok(MeshSetup { probe, responder, me, peers, name, linger: args.linger })
}

/// What `doctor` checks: the interface (and its index), the group, the role, the peers.
pub(crate) fn doctor(args: &DoctorArgs) -> Result<(Setup, u32)> {
    let group = net::check_group(args.group)?;
    let iface = net::resolve_iface(&args.iface)?;
    iface.check_family(group)?;
    if let Some(p) = args.peer.iter().find(|p| p.is_ipv6() != group.is_ipv6() || p.is_multicast()) {
        bail!("--peer {p}: not a host address of --group {group}'s family");
    }
    let role = match args.role {
        DoctorRole::Prober => Role::Prober,
        DoctorRole::Responder => Role::Responder,
        DoctorRole::Both => Role::Both,
    };
    let s = Setup {
        iface: iface.name.clone(),
        group,
        port: args.port,
        role,
        ack_port: args.ack_port,
        peers: args.peer.clone(),
        querier_wait: args.querier_listen,
        keyed: args.keyed,
    };
    Ok((s, iface.index))
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

/// Hosts one run probes by unicast (`--hosts`, `--hosts-file`): each is a socket, a run's
/// accounting (~26.6 KiB) and a send per probe. As many as `serve` takes per target.
pub(crate) const MAX_HOSTS: usize = 256;

/// The hosts of `--hosts` and `--hosts-file` (one per line, `#` starts a comment), resolved to
/// addresses of the group's family, in order and without repeats.
pub(crate) fn expected_hosts(a: &HostsArgs, group: IpAddr) -> Result<Vec<IpAddr>> {
    hosts_of(&a.hosts, a.hosts_file.as_deref(), group)
}

/// [`expected_hosts`] from a list and an optional file (serve's configuration has both).
pub(crate) fn hosts_of(list: &[String], file: Option<&Path>, group: IpAddr) -> Result<Vec<IpAddr>> {
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
    // Counted before any is resolved: 100 000 names must not become 100 000 lookups (and
    // sockets) before they are refused.
    if names.len() > MAX_HOSTS {
        let what = match file {
            Some(path) if list.is_empty() => format!("--hosts-file {}", path.display()),
            Some(path) => format!("--hosts and --hosts-file {}", path.display()),
            None => "--hosts".to_string(),
        };
        bail!(
            "{what}: {} hosts; at most {MAX_HOSTS} (each is a socket and a run of its own): split the list over several runs",
            names.len()
        );
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
    // What people put in host lists by habit, caught before it becomes a DNS lookup that fails
    // with "Name or service not known".
    if name.split_whitespace().nth(1).is_some() {
        bail!("one host per line (or per comma), not several");
    }
    if name.parse::<std::net::SocketAddr>().is_ok()
        || name.rsplit_once(':').is_some_and(|(h, p)| !h.contains(':') && p.parse::<u16>().is_ok())
    {
        bail!("a host without a port: mcprobe probes every host on --port");
    }
    if name.contains('/') {
        bail!("a host, not a network: list each host's address");
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

pub(crate) mod serve;

#[cfg(test)]
mod tests;
