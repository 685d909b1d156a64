//! `serve`'s flags and its `--config` file, turned into validated targets: the same rules as the
//! other commands' flags (the group, the key, the probe size), plus serve's own bounds. An error
//! names the flag, or the file, the target and the field, and `serve` refuses to start.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::auth::Key;
use crate::cli::{parse_duration, parse_rate, parse_size, ServeArgs};
use crate::net;
use crate::prober::ProbeConfig;
use crate::serve::schedule::{MESH_ANSWER_BUDGET, MESH_UNICAST_PER_WINDOW};
use crate::serve::watch::WatchTarget;
use crate::serve::{bounds, ServeConfig, Target};
use crate::stream::engine::EngineConfig;
use crate::stream::verdict::MinRate;
use crate::stream::{FormatChoice, SeqField};

/// A mesh target's probe interval unless given: 1 probe/s, which the schedule lowers as peers
/// appear so that a host answers at most 45 probes a second ([`crate::serve::schedule`]): from 31
/// hosts on (results/serve-mesh-cost/ measures the CPU).
pub(crate) const MESH_DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The settings of one target, as flags or a `[[target]]` table give them.
struct Spec {
    name: String,
    group: IpAddr,
    /// Every group probed in turn, `group` first (just `group` without `--groups`).
    groups: Vec<IpAddr>,
    port: u16,
    iface: Option<String>,
    ttl: u32,
    size: u16,
    interval: Duration,
    /// Which field gave the interval: `interval` or `rate`.
    interval_field: &'static str,
    timeout: Duration,
    window: Duration,
    hosts: Vec<IpAddr>,
    key: Option<Key>,
    outage_min: u64,
    rcvbuf: usize,
    querier_wait: Option<Duration>,
    ack_port: Option<u16>,
    /// `--mesh` / `mesh = true`: also answer the group, under this name.
    mesh: Option<String>,
    /// `--rate`/`--interval` (fields 'rate'/'interval') given: a mesh keeps that rate rather
    /// than its schedule's.
    rate_given: bool,
    /// Name errors after flags (`--window`) rather than file fields (`field 'window'`).
    from_flags: bool,
}

impl Spec {
    /// The interval as its field gave it: a duration, or probes a second.
    fn interval_text(&self) -> String {
        match self.interval_field {
            "rate" => format!("{}", (1e3 / self.interval.as_secs_f64()).round() / 1e3),
            _ => format!("{:?}", self.interval),
        }
    }

    fn what(&self, field: &str) -> String {
        if self.from_flags {
            format!("--{}", field.replace('_', "-"))
        } else {
            format!("field '{field}'")
        }
    }
}

pub(crate) fn from_args(a: &ServeArgs) -> Result<ServeConfig> {
    let (targets, watches) = match &a.config {
        Some(path) => {
            let (mut targets, watches) = from_file(path)?;
            // A `mesh = true` target answers under --name (the host's name by default).
            if targets.iter().any(|t| t.mesh.is_some()) {
                let name = super::name(&a.name)?;
                for m in targets.iter_mut().filter_map(|t| t.mesh.as_mut()) {
                    m.responder.name = name.clone();
                }
            }
            for w in &watches {
                // Every group can have a stream of its own.
                if w.groups.len() > a.max_series {
                    bail!(
                        "--config {}: watch '{}': field 'groups': {} groups, more than --max-series {} (the streams one entry follows)",
                        path.display(),
                        w.name,
                        w.groups.len(),
                        a.max_series
                    );
                }
            }
            (targets, watches)
        }
        None => {
            let default = if a.mesh { MESH_DEFAULT_INTERVAL } else { super::DEFAULT_INTERVAL };
            let interval = super::interval(&a.pace, default)?;
            let (groups, port) = match &a.groups.groups {
                Some(list) => {
                    for &g in &list.groups {
                        net::check_group_of("--groups", g)?;
                    }
                    (list.groups.clone(), list.port.unwrap_or(a.net.port))
                }
                None => (vec![net::check_group(a.net.group)?], a.net.port),
            };
            let group = groups[0];
            if a.target.is_empty() || a.target.chars().any(char::is_control) {
                bail!("--target {:?}: the target's name must be a non-empty printable name", a.target);
            }
            let spec = Spec {
                name: a.target.clone(),
                group,
                groups,
                port,
                iface: a.net.iface.clone(),
                ttl: a.send.ttl,
                size: a.send.size,
                interval,
                interval_field: if a.pace.rate.is_some() && a.pace.interval.is_none() { "rate" } else { "interval" },
                timeout: a.send.timeout,
                window: a.window,
                hosts: {
                    check_host_count("--hosts", host_entries(&a.hosts.hosts, a.hosts.hosts_file.as_deref()))?;
                    super::expected_hosts(&a.hosts, group)?
                },
                key: super::key_of(&a.key)?,
                outage_min: a.outage_min,
                rcvbuf: a.net.rcvbuf,
                querier_wait: a.querier.querier_wait,
                ack_port: a.send.ack_port,
                mesh: if a.mesh { Some(super::name(&a.name)?) } else { None },
                rate_given: a.pace.rate.is_some() || a.pace.interval.is_some(),
                from_flags: true,
            };
            (vec![build(spec).map_err(|e| anyhow::anyhow!("{e}"))?], Vec::new())
        }
    };
    let total: f64 = targets.iter().map(Target::send_rate).sum();
    if total > bounds::MAX_TOTAL_RATE {
        let what = a.config.as_ref().map_or("--rate".to_string(), |p| format!("--config {}", p.display()));
        bail!(
            "{what}: the targets send {total:.0} probes/s together (unicast probes to hosts included); serve sends at most {:.0}",
            bounds::MAX_TOTAL_RATE
        );
    }
    let web = a.web_config.as_deref().map(crate::serve::webconfig::load).transpose()?.unwrap_or_default();
    Ok(ServeConfig {
        listen: a.listen,
        forget: a.forget,
        max_series: a.max_series,
        group_series: a.group_series,
        targets,
        watches,
        quiet: a.quiet,
        web,
    })
}

/// A `[[target]]` table as written; every value is checked in [`from_table`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTarget {
    name: String,
    group: Option<String>,
    /// As `--groups` takes it: `"239.1.0.0/22"`, `"239.1.0.0/22:5000"`.
    groups: Option<String>,
    port: Option<u16>,
    iface: Option<String>,
    ttl: Option<u32>,
    size: Option<u16>,
    interval: Option<String>,
    rate: Option<f64>,
    timeout: Option<String>,
    window: Option<String>,
    #[serde(default)]
    hosts: Vec<String>,
    key_file: Option<PathBuf>,
    outage_min: Option<u64>,
    rcvbuf: Option<String>,
    querier_wait: Option<String>,
    ack_port: Option<u16>,
    /// Also answer the group (as `--mesh`).
    #[serde(default)]
    mesh: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    target: Vec<toml::Table>,
    #[serde(default)]
    watch: Vec<toml::Table>,
}

/// Reads the targets and the watch entries of a config file.
pub(crate) fn from_file(path: &Path) -> Result<(Vec<Target>, Vec<WatchTarget>)> {
    let p = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("--config {p}: cannot read"))?;
    let file: File = toml::from_str(&text).map_err(|e| anyhow::anyhow!("--config {p}: {e}"))?;
    if file.target.is_empty() && file.watch.is_empty() {
        bail!("--config {p}: no [[target]] or [[watch]] table");
    }
    let targets = targets_of(path, file.target)?;
    let watches = watches_of(path, file.watch, &targets)?;
    Ok((targets, watches))
}

fn targets_of(path: &Path, tables: Vec<toml::Table>) -> Result<Vec<Target>> {
    let p = path.display();
    if tables.len() > bounds::MAX_TARGETS {
        bail!("--config {p}: {} targets; serve probes at most {}", tables.len(), bounds::MAX_TARGETS);
    }
    let mut targets: Vec<Target> = Vec::new();
    let mut groups = 0;
    for (i, table) in tables.into_iter().enumerate() {
        let label = match table.get("name").and_then(|v| v.as_str()) {
            Some(n) => format!("target '{n}'"),
            None => format!("target #{}", i + 1),
        };
        let t = from_table(table).map_err(|e| anyhow::anyhow!("--config {p}: {label}: {e}"))?;
        if targets.iter().any(|o| o.name == t.name) {
            bail!("--config {p}: {label}: field 'name': another target has this name");
        }
        if let Some((o, g)) = targets.iter().find_map(|o| same_destination(o, &t).map(|g| (o, g))) {
            bail!(
                "--config {p}: {label}: fields 'group', 'port' and 'iface': target '{}' probes the same group, port and interface ({g})",
                o.name
            );
        }
        groups += t.probe.groups.len();
        if groups > bounds::MAX_TARGET_GROUPS {
            bail!(
                "--config {p}: {label}: field 'groups': {groups} groups in the [[target]] tables so far; serve probes at most {} (each responder's window keeps a tally per group)",
                bounds::MAX_TARGET_GROUPS
            );
        }
        if let Some((a, b)) = t.ack_ports() {
            if let Some(o) = targets.iter().find(|o| o.ack_ports().is_some_and(|(c, d)| a <= d && c <= b)) {
                bail!(
                    "--config {p}: {label}: field 'ack_port': its ports {a}-{b} overlap those of target '{}'",
                    o.name
                );
            }
        }
        targets.push(t);
    }
    Ok(targets)
}

/// The `[[watch]]` tables: each checked alone, then against the others and the targets.
fn watches_of(path: &Path, tables: Vec<toml::Table>, targets: &[Target]) -> Result<Vec<WatchTarget>> {
    let p = path.display();
    if tables.len() > bounds::MAX_WATCHES {
        bail!("--config {p}: {} [[watch]] entries; serve watches at most {}", tables.len(), bounds::MAX_WATCHES);
    }
    let mut watches: Vec<WatchTarget> = Vec::new();
    let mut groups = 0;
    for (i, table) in tables.into_iter().enumerate() {
        let label = match table.get("name").and_then(|v| v.as_str()) {
            Some(n) => format!("watch '{n}'"),
            None => format!("watch #{}", i + 1),
        };
        let w = watch_of(table).map_err(|e| anyhow::anyhow!("--config {p}: {label}: {e}"))?;
        if watches.iter().any(|o| o.name == w.name) || targets.iter().any(|t| t.name == w.name) {
            bail!("--config {p}: {label}: field 'name': another [[target]] or [[watch]] has this name (the 'target' label)");
        }
        let iface = |w: &WatchTarget| w.iface.as_ref().map(|i| i.index);
        for o in watches.iter().filter(|o| iface(o) == iface(&w)) {
            if let Some(&(g, port)) = w.groups.iter().find(|s| o.groups.contains(s)) {
                bail!(
                    "--config {p}: {label}: field 'groups': {} is watched by watch '{}' on the same interface already",
                    std::net::SocketAddr::new(g, port),
                    o.name
                );
            }
        }
        groups += w.groups.len();
        if groups > bounds::MAX_WATCH_GROUPS {
            bail!(
                "--config {p}: {label}: field 'groups': {groups} groups in the [[watch]] entries so far; serve watches at most {} (a socket each)",
                bounds::MAX_WATCH_GROUPS
            );
        }
        watches.push(w);
    }
    Ok(watches)
}

/// A `[[watch]]` table as written; every value is checked in [`watch_of`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWatch {
    name: String,
    /// `GROUP:PORT` strings as `watch` takes them (ranges, prefixes, lists), or one such string.
    groups: toml::Value,
    iface: Option<String>,
    source: Option<String>,
    format: Option<String>,
    rtp_clock: Option<i64>,
    ts_rate: Option<String>,
    rcvbuf: Option<String>,
    max_sources: Option<i64>,
}

/// `format`: `auto`, `rtp`, `ts`, `raw`, or `seq TYPE@OFFSET`.
fn format_of(s: &str) -> Result<FormatChoice, String> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "auto" => return Ok(FormatChoice::Auto),
        "rtp" => return Ok(FormatChoice::Rtp),
        "ts" => return Ok(FormatChoice::Ts),
        "raw" => return Ok(FormatChoice::Raw),
        _ => {}
    }
    match t.strip_prefix("seq ") {
        Some(spec) => SeqField::parse(spec).map(FormatChoice::Seq),
        None => Err(format!("'{s}' is not a format: auto, rtp, ts, raw, or seq TYPE@OFFSET (seq u32be@0)")),
    }
}

fn watch_of(table: toml::Table) -> Result<WatchTarget, String> {
    let w: FileWatch = table.try_into().map_err(|e: toml::de::Error| e.message().to_string())?;
    if w.name.is_empty() || w.name.chars().any(char::is_control) {
        return Err("field 'name': must be a non-empty printable name".into());
    }
    let specs: Vec<&str> = match &w.groups {
        toml::Value::String(s) => vec![s.as_str()],
        toml::Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().ok_or_else(|| format!("field 'groups': {v} is not a \"GROUP:PORT\" string")))
            .collect::<Result<_, _>>()?,
        v => return Err(format!("field 'groups': {v} is not a list of \"GROUP:PORT\" strings")),
    };
    let mut groups: Vec<(IpAddr, u16)> = Vec::new();
    for spec in &specs {
        let (gs, port) = field("groups", crate::groups::parse_groups_port(spec, bounds::MAX_WATCH_GROUPS))?;
        for g in gs {
            field("groups", net::check_group(g).map_err(|e| format!("'{spec}': {e:#}")))?;
            if !groups.contains(&(g, port)) {
                groups.push((g, port));
            }
            if groups.len() > bounds::MAX_WATCH_GROUPS {
                return Err(format!(
                    "field 'groups': more than {} groups; serve watches at most that many",
                    bounds::MAX_WATCH_GROUPS
                ));
            }
        }
    }
    if groups.is_empty() {
        return Err("field 'groups': no group; give \"GROUP:PORT\" strings (239.1.1.1:5000, 239.1.0.0/24:5000)".into());
    }
    let v6 = groups[0].0.is_ipv6();
    if let Some(&(g, _)) = groups.iter().find(|(g, _)| g.is_ipv6() != v6) {
        return Err(format!("field 'groups': {g} is not of the same family as {}", groups[0].0));
    }
    let source = match &w.source {
        Some(s) => {
            let a: IpAddr = field("source", s.parse().map_err(|_| format!("'{s}' is not an address")))?;
            if a.is_multicast() || a.is_unspecified() || a.is_ipv6() != v6 {
                return Err(format!("field 'source': '{s}' is not a sender's address of the groups' family"));
            }
            Some(a)
        }
        None => None,
    };
    let format = match &w.format {
        Some(f) => field("format", format_of(f))?,
        None => FormatChoice::Auto,
    };
    let rtp_clock = match w.rtp_clock {
        Some(hz) if (1000..=10_000_000).contains(&hz) => Some(hz as u32),
        Some(hz) => {
            return Err(format!("field 'rtp_clock': {hz} is not between 1000 and 10000000 Hz (90000 for video)"))
        }
        None => None,
    };
    let media_rate = match &w.ts_rate {
        Some(r) => match field("ts_rate", MinRate::parse(r))? {
            MinRate::BitsPerSecond(b) => Some(b / 8.0),
            MinRate::PacketsPerSecond(_) => {
                return Err(format!("field 'ts_rate': '{r}': give the media rate in bits/s (e.g. 3.75M)"))
            }
        },
        None => None,
    };
    let rcvbuf = match &w.rcvbuf {
        Some(s) => field("rcvbuf", parse_size(s))?,
        None => 4 << 20,
    };
    let max_sources = match w.max_sources {
        Some(n) if (1..=bounds::MAX_SOURCES as i64).contains(&n) => n as usize,
        Some(n) => return Err(format!("field 'max_sources': {n} is not between 1 and {}", bounds::MAX_SOURCES)),
        None => bounds::DEFAULT_SOURCES,
    };
    let iface = match &w.iface {
        Some(i) => Some(net::resolve_iface(i).map_err(|e| format!("field 'iface': {e:#}"))?),
        None => None,
    };
    if let Some(a) = iface.as_ref().and_then(|i| i.given).filter(|a| a.is_ipv6() != v6) {
        return Err(format!(
            "field 'iface': '{a}' is an address of the other family than the groups; give the interface's name"
        ));
    }
    if v6 && iface.is_none() {
        return Err("field 'iface': IPv6 groups need an interface".into());
    }
    Ok(WatchTarget {
        name: w.name,
        iface,
        groups,
        source,
        engine: EngineConfig { format, rtp_clock, media_rate, keep_intervals: false, ..EngineConfig::default() },
        rcvbuf,
        max_sources,
    })
}

/// Two targets that probe the same group and port through the same interface would each take
/// the other's probes and acks for their own responders' traffic: one is a mistake. The group
/// both probe, if any (with `groups`, any one of them).
fn same_destination(a: &Target, b: &Target) -> Option<IpAddr> {
    let iface = |t: &Target| t.probe.iface.as_ref().map(|i| i.index);
    if (a.probe.port, iface(a)) != (b.probe.port, iface(b)) {
        return None;
    }
    a.probe.groups.iter().copied().find(|g| b.probe.groups.contains(g))
}

/// Hosts are counted before they are resolved: a list of 100 000 names must not become 100 000
/// lookups before it is refused.
fn check_host_count(what: &str, n: usize) -> Result<()> {
    if n > bounds::MAX_HOSTS {
        let what = if what.is_empty() { String::new() } else { format!("{what}: ") };
        bail!("{what}{n} hosts; serve probes at most {} per target", bounds::MAX_HOSTS);
    }
    Ok(())
}

/// Entries of `--hosts` and `--hosts-file` as `config::expected_hosts` reads them (an unreadable
/// file counts 0 here and is reported there).
fn host_entries(list: &[String], file: Option<&Path>) -> usize {
    let text = file.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    list.len() + text.lines().filter(|l| !l.split('#').next().unwrap_or("").trim().is_empty()).count()
}

fn field<T>(name: &str, r: Result<T, String>) -> Result<T, String> {
    r.map_err(|e| format!("field '{name}': {e}"))
}

fn from_table(table: toml::Table) -> Result<Target, String> {
    let t: FileTarget = table.try_into().map_err(|e: toml::de::Error| e.message().to_string())?;
    if t.name.is_empty() || t.name.chars().any(char::is_control) {
        return Err("field 'name': must be a non-empty printable name".into());
    }
    let (groups, list_port) = match (&t.group, &t.groups) {
        (Some(_), Some(_)) => return Err("fields 'group' and 'groups': give one of them".into()),
        (_, Some(list)) => {
            let list = field("groups", crate::cli::parse_group_list(list))?;
            for &g in &list.groups {
                field("groups", net::check_group(g).map_err(|e| format!("{e:#}").replacen("--group ", "", 1)))?;
            }
            (list.groups, list.port)
        }
        (group, None) => {
            let text = group.as_deref().unwrap_or(crate::cli::DEFAULT_GROUP);
            let group = field("group", text.parse::<IpAddr>().map_err(|_| format!("'{text}' is not an address")))?;
            (vec![field("group", net::check_group(group).map_err(|e| format!("{e:#}")))?], None)
        }
    };
    if let (Some(p), Some(q)) = (list_port, t.port) {
        if p != q {
            return Err(format!("fields 'groups' and 'port': the list says port {p}, 'port' {q}; give it once"));
        }
    }
    let group = groups[0];
    let duration = |name: &str, v: &Option<String>, default: Duration| match v {
        Some(s) => field(name, parse_duration(s)),
        None => Ok(default),
    };
    let interval = match (&t.interval, t.rate) {
        (Some(_), Some(_)) => return Err("fields 'interval' and 'rate': give one of them".into()),
        (None, Some(r)) => Duration::from_secs_f64(1.0 / field("rate", parse_rate(&r.to_string()))?),
        (i, None) => duration("interval", i, if t.mesh { MESH_DEFAULT_INTERVAL } else { Duration::from_millis(100) })?,
    };
    if t.port == Some(0) {
        return Err("field 'port': must be 1 to 65535".into());
    }
    if t.ttl.is_some_and(|v| v > 255) {
        return Err("field 'ttl': must be 0 to 255".into());
    }
    if t.size.is_some_and(|s| !(64..=65507).contains(&s)) {
        return Err("field 'size': must be 64 to 65507".into());
    }
    if t.outage_min == Some(0) {
        return Err("field 'outage_min': must be at least 1".into());
    }
    let rcvbuf = match &t.rcvbuf {
        Some(s) => field("rcvbuf", parse_size(s))?,
        None => net::DEFAULT_RCVBUF,
    };
    field("hosts", check_host_count("", t.hosts.len()).map_err(|e| e.to_string()))?;
    let hosts = field("hosts", super::hosts_of(&t.hosts, None, group).map_err(|e| format!("{e:#}")))?;
    let key = match &t.key_file {
        Some(p) => Some(field("key_file", Key::from_file(p).map_err(|e| format!("{e:#}")))?),
        None => None,
    };
    build(Spec {
        name: t.name,
        group,
        groups,
        port: list_port.or(t.port).unwrap_or(crate::cli::DEFAULT_PORT),
        iface: t.iface,
        ttl: t.ttl.unwrap_or(1),
        size: t.size.unwrap_or(128),
        interval,
        interval_field: if t.rate.is_some() { "rate" } else { "interval" },
        timeout: duration("timeout", &t.timeout, Duration::from_secs(1))?,
        window: duration("window", &t.window, Duration::from_secs(10))?,
        hosts,
        key,
        outage_min: t.outage_min.unwrap_or(3),
        rcvbuf,
        querier_wait: t.querier_wait.as_ref().map(|s| field("querier_wait", parse_duration(s))).transpose()?,
        ack_port: t.ack_port,
        // The name is --name's, set once every target is read.
        mesh: t.mesh.then(String::new),
        rate_given: t.rate.is_some() || t.interval.is_some(),
        from_flags: false,
    })
}

/// Checks what spans several fields and builds the engine configuration of one window.
fn build(s: Spec) -> Result<Target, String> {
    if s.interval < bounds::MIN_INTERVAL {
        return Err(format!(
            "{} {} is beyond serve's shortest interval, {:?} ({:.0} probes/s)",
            s.what(s.interval_field),
            s.interval_text(),
            bounds::MIN_INTERVAL,
            1.0 / bounds::MIN_INTERVAL.as_secs_f64()
        ));
    }
    if !(bounds::MIN_WINDOW..=bounds::MAX_WINDOW).contains(&s.window) {
        let (lo, hi) = (bounds::MIN_WINDOW, bounds::MAX_WINDOW);
        return Err(format!("{} {:?} is not between {lo:?} and {hi:?}", s.what("window"), s.window));
    }
    if s.window < s.interval {
        return Err(format!("{} {:?} is shorter than the probe interval {:?}", s.what("window"), s.window, s.interval));
    }
    // A window waits `timeout` for its late acks while the next one sends; that wait must be
    // over well before the one after is due, or windows would pile up.
    if s.timeout.is_zero() || s.timeout > s.window / 2 {
        return Err(format!(
            "{} {:?} must be more than 0 and at most half the window ({:?}): each window waits this long for late acks while the next one probes",
            s.what("timeout"),
            s.timeout,
            s.window
        ));
    }
    let rate = (1 + s.hosts.len()) as f64 / s.interval.as_secs_f64();
    if rate > bounds::MAX_TARGET_RATE {
        return Err(format!(
            "{} {} with {} host(s) makes {rate:.0} probes/s (multicast and unicast); a target sends at most {:.0}",
            s.what(s.interval_field),
            s.interval_text(),
            s.hosts.len(),
            bounds::MAX_TARGET_RATE
        ));
    }
    if let Err(e) = super::check_size(s.size, s.key.is_some()) {
        // The rule is the other commands'; only the name of the field is serve's.
        return Err(format!("{e:#}").replacen("--size", &s.what("size"), 1));
    }
    let iface = match &s.iface {
        // resolve_iface names --iface and the value itself.
        Some(i) if s.from_flags => Some(net::resolve_iface(i).map_err(|e| format!("{e:#}"))?),
        Some(i) => Some(net::resolve_iface(i).map_err(|e| format!("field 'iface': {e:#}"))?),
        None => None,
    };
    // As the other commands: an interface of the group's family, and one at all for IPv6, checked
    // before the HTTP server starts or any window opens a socket.
    match (&iface, s.group) {
        (Some(i), g) => i.check_family(g).map_err(|e| format!("{e:#}"))?,
        (None, IpAddr::V6(g)) => {
            net::need_v6_iface(None, g).map_err(|e| format!("{}: {e:#}", s.what("iface")))?;
        }
        (None, IpAddr::V4(_)) => {}
    }
    // A mesh host answers the group itself: its own addresses are not peers to probe.
    let mut hosts = s.hosts.clone();
    if s.mesh.is_some() {
        if s.groups.len() > 1 {
            return Err(format!(
                "{}: a mesh probes and answers one group; --groups gives {}",
                s.what("mesh"),
                s.groups.len()
            ));
        }
        let local = net::local_addrs().map_err(|e| format!("{e:#}"))?;
        hosts.retain(|h| !local.contains(h));
    }
    // A mesh probes a sample of its peers by unicast in each window: that many ports a window.
    let unicast_slots = if s.mesh.is_some() { MESH_UNICAST_PER_WINDOW } else { hosts.len() };
    let ack_port = super::check_ack_port(s.ack_port, &s.what("ack_port"), s.port, unicast_slots, 2)?;
    // At most MAX_WINDOW / MIN_INTERVAL = 36 million probes: no overflow anywhere.
    let count = ((s.window.as_nanos() + s.interval.as_nanos() / 2) / s.interval.as_nanos()).max(1) as u64;
    // Every window probes every group (probe k to group k mod N): the reach of a group in a
    // window is only known if the window sends to it.
    if count < s.groups.len() as u64 {
        return Err(format!(
            "{} {:?} holds {count} probes at {} {}, fewer than the {} groups: every window must probe each group at least once (a longer window or a faster rate; a few rounds each are better)",
            s.what("window"),
            s.window,
            s.what(s.interval_field),
            s.interval_text(),
            s.groups.len()
        ));
    }
    let window = Duration::from_nanos((s.interval.as_nanos() * u128::from(count)) as u64);
    // Each window gets a session of its own when it starts (see `serve::target_loop`).
    let probe = ProbeConfig {
        ttl: s.ttl,
        size: s.size as usize,
        interval: s.interval,
        count,
        timeout: s.timeout,
        rcvbuf: s.rcvbuf,
        key: s.key,
        outage_min: s.outage_min,
        hosts,
        ack_port,
        groups: s.groups,
        ..super::probe_defaults(s.group, s.port, iface.clone())
    };
    let mesh = s.mesh.map(|name| crate::serve::Mesh {
        responder: crate::responder::ResponderConfig {
            rcvbuf: s.rcvbuf,
            key: probe.key.clone(),
            ..super::responder_defaults(s.group, s.port, iface, name)
        },
        budget: (!s.rate_given).then_some(MESH_ANSWER_BUDGET),
        unicast_max: MESH_UNICAST_PER_WINDOW,
    });
    Ok(Target { name: s.name, probe, window, querier_wait: s.querier_wait, mesh })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_all(text: &str) -> Result<(Vec<Target>, Vec<WatchTarget>)> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        from_file(f.path())
    }

    fn load(text: &str) -> Result<Vec<Target>> {
        load_all(text).map(|(t, _)| t)
    }

    fn watches(text: &str) -> Result<Vec<WatchTarget>> {
        load_all(text).map(|(_, w)| w)
    }

    #[test]
    fn reads_watch_entries_with_defaults() {
        let (t, w) = load_all(
            "[[watch]]\nname = \"iptv\"\niface = \"127.0.0.1\"\ngroups = [\"239.1.1.1-239.1.1.3:5000\", \"239.1.1.2:5000\", \"239.2.0.0/31:1234\"]\n\
             [[watch]]\nname = \"md\"\ngroups = \"239.9.9.9:30001\"\nformat = \"seq u64le@8\"\nsource = \"10.0.0.5\"\n\
             rtp_clock = 48000\nts_rate = \"3.75M\"\nrcvbuf = \"8M\"\nmax_sources = 1\n",
        )
        .unwrap();
        assert!(t.is_empty(), "a config of [[watch]] entries only is a config");
        let g = |s: &str| s.parse::<IpAddr>().unwrap();
        let iptv = &w[0];
        assert_eq!(iptv.name, "iptv");
        assert_eq!(
            iptv.groups,
            [
                (g("239.1.1.1"), 5000),
                (g("239.1.1.2"), 5000),
                (g("239.1.1.3"), 5000),
                (g("239.2.0.0"), 1234),
                (g("239.2.0.1"), 1234)
            ]
        );
        assert_eq!(iptv.iface.as_ref().map(|i| i.name.as_str()), Some("lo"));
        assert_eq!((iptv.source, iptv.engine.format, iptv.max_sources), (None, FormatChoice::Auto, 4));
        assert_eq!((iptv.engine.rtp_clock, iptv.engine.media_rate, iptv.rcvbuf), (None, None, 4 << 20));
        assert!(!iptv.engine.keep_intervals, "serve keeps no timelines");
        let md = &w[1];
        assert_eq!(md.groups, [(g("239.9.9.9"), 30001)]);
        assert_eq!(md.engine.format, FormatChoice::Seq(SeqField::parse("u64le@8").unwrap()));
        assert_eq!(
            (md.source, md.engine.rtp_clock, md.engine.media_rate),
            (Some(g("10.0.0.5")), Some(48000), Some(468_750.0))
        );
        assert_eq!((md.rcvbuf, md.max_sources), (8 << 20, 1));
        for (text, want) in [
            ("rtp", FormatChoice::Rtp),
            ("TS", FormatChoice::Ts),
            ("raw", FormatChoice::Raw),
            ("auto", FormatChoice::Auto),
        ] {
            let w = watches(&format!("[[watch]]\nname = \"a\"\ngroups = [\"239.1.1.1:5000\"]\nformat = \"{text}\"\n"))
                .unwrap();
            assert_eq!(w[0].engine.format, want);
        }
        // Targets and watches side by side.
        let (t, w) =
            load_all("[[target]]\nname = \"lan\"\n[[watch]]\nname = \"tv\"\ngroups = [\"239.1.1.1:5000\"]\n").unwrap();
        assert_eq!((t.len(), w.len()), (1, 1));
    }

    #[test]
    fn watch_errors_name_the_entry_the_field_and_the_value() {
        let one = |extra: &str| format!("[[watch]]\nname = \"tv\"\ngroups = [\"239.1.1.1:5000\"]\n{extra}");
        let cases = [
            (one("format = \"mpeg\"\n"), "watch 'tv': field 'format': 'mpeg' is not a format"),
            (one("format = \"seq u24be@0\"\n"), "watch 'tv': field 'format': 'u24be@0' is not a sequence field"),
            (one("source = \"nobody\"\n"), "watch 'tv': field 'source': 'nobody' is not an address"),
            (one("source = \"::1\"\n"), "watch 'tv': field 'source': '::1' is not a sender's address"),
            (one("rtp_clock = 5\n"), "watch 'tv': field 'rtp_clock': 5 is not between"),
            (one("ts_rate = \"100pps\"\n"), "watch 'tv': field 'ts_rate': '100pps': give the media rate in bits/s"),
            (one("ts_rate = \"fast\"\n"), "watch 'tv': field 'ts_rate': 'fast' is not a rate"),
            (one("rcvbuf = \"lots\"\n"), "watch 'tv': field 'rcvbuf'"),
            (one("max_sources = 0\n"), "watch 'tv': field 'max_sources': 0 is not between 1 and 16"),
            (one("max_sources = 17\n"), "watch 'tv': field 'max_sources': 17 is not between 1 and 16"),
            (one("iface = \"nosuchif9\"\n"), "watch 'tv': field 'iface': --iface nosuchif9"),
            (one("iface = \"::1\"\n"), "watch 'tv': field 'iface': '::1' is an address of the other family"),
            (one("max_gap = \"1s\"\n"), "watch 'tv': unknown field `max_gap`"),
            (
                "[[watch]]\nname = \"tv\"\ngroups = [\"10.0.0.1:5000\"]\n".into(),
                "watch 'tv': field 'groups': '10.0.0.1' is not a multicast address",
            ),
            (
                "[[watch]]\nname = \"tv\"\ngroups = [\"239.1.1.1\"]\n".into(),
                "watch 'tv': field 'groups': '239.1.1.1': expected GROUP:PORT",
            ),
            (
                "[[watch]]\nname = \"tv\"\ngroups = [\"239.0.0.0/8:5000\"]\n".into(),
                "watch 'tv': field 'groups': '239.0.0.0/8': 16777216 groups, more than the 4096",
            ),
            (
                "[[watch]]\nname = \"tv\"\ngroups = [5000]\n".into(),
                "watch 'tv': field 'groups': 5000 is not a \"GROUP:PORT\" string",
            ),
            ("[[watch]]\nname = \"tv\"\ngroups = []\n".into(), "watch 'tv': field 'groups': no group"),
            (
                "[[watch]]\nname = \"tv\"\ngroups = [\"239.1.1.1:5000\", \"[ff15::1]:5000\"]\niface = \"lo\"\n".into(),
                "watch 'tv': field 'groups': ff15::1 is not of the same family as 239.1.1.1",
            ),
            (
                "[[watch]]\nname = \"tv\"\ngroups = [\"[ff15::1]:5000\"]\n".into(),
                "watch 'tv': field 'iface': IPv6 groups need an interface",
            ),
            ("[[watch]]\ngroups = [\"239.1.1.1:5000\"]\n".into(), "watch #1: missing field `name`"),
            (format!("{}{}", one(""), one("")), "watch 'tv': field 'name': another [[target]] or [[watch]]"),
            (
                format!("[[target]]\nname = \"tv\"\n{}", one("")),
                "watch 'tv': field 'name': another [[target]] or [[watch]]",
            ),
            (
                format!("{}[[watch]]\nname = \"tv2\"\ngroups = [\"239.1.1.0/30:5000\"]\n", one("")),
                "watch 'tv2': field 'groups': 239.1.1.1:5000 is watched by watch 'tv' on the same interface already",
            ),
        ];
        for (text, want) in cases {
            let e = format!("{:#}", watches(&text).unwrap_err());
            assert!(e.starts_with("--config ") && e.contains(want), "{text:?}: {e}");
        }
    }

    /// The example in contrib/ reads (its interfaces, which this host may not have, left out).
    #[test]
    fn the_contrib_example_reads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/systemd/serve.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let text: String = text.lines().filter(|l| !l.starts_with("iface")).map(|l| format!("{l}\n")).collect();
        let (t, w) = load_all(&text).unwrap();
        assert_eq!((t.len(), w.len(), w[0].groups.len()), (3, 1, 40));
        assert_eq!(t[2].probe.groups.len(), 1024);
    }

    #[test]
    fn watch_bounds_are_named_and_enforced() {
        let entry = |i: usize, groups: &str| format!("[[watch]]\nname = \"w{i}\"\ngroups = [\"{groups}\"]\n");
        let many: String = (0..=bounds::MAX_WATCHES).map(|i| entry(i, &format!("239.1.1.{}:5000", i + 1))).collect();
        let e = format!("{:#}", watches(&many).unwrap_err());
        assert!(e.contains("17 [[watch]] entries; serve watches at most 16"), "{e}");
        // 4096 groups in one entry are fine; 2 × 2048 + 1 more over entries is not.
        let w = watches(&entry(0, "239.1.0.0/20:5000")).unwrap();
        assert_eq!(w[0].groups.len(), 4096);
        let over =
            format!("{}{}{}", entry(0, "239.1.0.0/21:5000"), entry(1, "239.2.0.0/21:5000"), entry(2, "239.3.0.0:5000"));
        let e = format!("{:#}", watches(&over).unwrap_err());
        assert!(
            e.contains(
                "watch 'w2': field 'groups': 4097 groups in the [[watch]] entries so far; serve watches at most 4096"
            ),
            "{e}"
        );
        let e = format!("{:#}", watches(&entry(0, "239.1.0.0/20,239.2.0.0:5000")).unwrap_err());
        assert!(e.contains("field 'groups'") && e.contains("more than 4096 groups"), "{e}");
        let e = format!("{:#}", load_all("").unwrap_err());
        assert!(e.contains("no [[target]] or [[watch]] table"), "{e}");
    }

    #[test]
    fn reads_targets_with_defaults() {
        let t = load(
            "[[target]]\nname = \"a\"\ninterval = \"50ms\"\nwindow = \"5s\"\n[[target]]\nname = \"b\"\nrate = 20\ngroup = \"239.1.1.1\"\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].probe.count, 100);
        assert_eq!(t[1].probe.interval, Duration::from_millis(50));
        assert_eq!(t[1].probe.port, crate::cli::DEFAULT_PORT);
        assert_eq!((t[0].querier_wait, t[1].querier_wait), (None, None));
        let t = load("[[target]]\nname = \"a\"\nquerier_wait = \"30s\"\n").unwrap();
        assert_eq!(t[0].querier_wait, Some(Duration::from_secs(30)));
    }

    #[test]
    fn long_windows_keep_every_probe_and_no_count_is_truncated() {
        let t = load("[[target]]\nname = \"a\"\ninterval = \"100us\"\nwindow = \"1h\"\ntimeout = \"30m\"\n").unwrap();
        assert_eq!((t[0].probe.count, t[0].window), (36_000_000, Duration::from_secs(3600)));
        let many: String =
            (0..=bounds::MAX_TARGETS).map(|i| format!("[[target]]\nname = \"t{i}\"\nport = {}\n", 2000 + i)).collect();
        let e = format!("{:#}", load(&many).unwrap_err());
        assert!(e.contains("65 targets; serve probes at most 64"), "{e}");
    }

    #[test]
    fn windows_take_two_blocks_of_ack_ports_and_targets_do_not_share_them() {
        let t = load("[[target]]\nname = \"a\"\nack_port = 40000\nhosts = [\"127.0.0.2\"]\n").unwrap();
        let ports: Vec<Option<u16>> = (0..4).map(|k| t[0].ack_port_of_window(k)).collect();
        assert_eq!(ports, [Some(40000), Some(40002), Some(40000), Some(40002)]);
        assert_eq!(t[0].ack_ports(), Some((40000, 40003)));
        let e = format!(
            "{:#}",
            load("[[target]]\nname = \"a\"\nack_port = 40000\n[[target]]\nname = \"b\"\nport = 24243\nack_port = 40001\n")
                .unwrap_err()
        );
        assert!(e.contains("target 'b': field 'ack_port': its ports 40001-40002 overlap those of target 'a'"), "{e}");
    }

    #[test]
    fn errors_name_the_target_and_the_field() {
        let cases = [
            ("[[target]]\nname = \"a\"\ninterval = \"soon\"\n", "target 'a': field 'interval'"),
            ("[[target]]\nname = \"a\"\ngroup = \"10.0.0.1\"\n", "target 'a': field 'group'"),
            ("[[target]]\nname = \"a\"\nport = 0\n", "target 'a': field 'port'"),
            ("[[target]]\nname = \"a\"\nintervl = \"1s\"\n", "target 'a': unknown field `intervl`"),
            ("[[target]]\nname = \"a\"\nport = \"x\"\n", "target 'a': invalid type"),
            ("[[target]]\ngroup = \"239.1.1.1\"\n", "target #1: missing field `name`"),
            ("[[target]]\nname = \"a\"\n[[target]]\nname = \"a\"\nport = 5\n", "target 'a': field 'name'"),
            ("[[target]]\nname = \"a\"\ninterval = \"2s\"\nwindow = \"1s\"\n", "target 'a': field 'window'"),
            ("[[target]]\nname = \"a\"\nquerier_wait = \"soon\"\n", "target 'a': field 'querier_wait'"),
            ("[[target]]\nname = \"a\"\ninterval = \"1ns\"\n", "target 'a': field 'interval' 1ns is beyond"),
            ("[[target]]\nname = \"a\"\nrate = 1000000\n", "target 'a': field 'rate' 1000000 is beyond"),
            ("[[target]]\nname = \"a\"\nwindow = \"1s\"\ntimeout = \"1000000h\"\n", "target 'a': field 'timeout'"),
            ("[[target]]\nname = \"a\"\nwindow = \"1000000h\"\n", "target 'a': field 'window'"),
            ("[[target]]\nname = \"a\"\nrate = 9000\nhosts = [\"127.0.0.1\"]\n", "target 'a': field 'rate'"),
            ("[[target]]\nname = \"a\"\n[[target]]\nname = \"b\"\n", "target 'b': fields 'group', 'port' and 'iface'"),
            ("[[target]]\nname = \"a\"\nack_port = 24242\n", "target 'a': field 'ack_port' 24242: the same as --port"),
            ("", "no [[target]] or [[watch]]"),
            (
                "[[target]]\nname = \"a\"\ngroup = \"ff12::4242\"\n",
                "target 'a': field 'iface': --group ff12::4242: IPv6 groups need --iface",
            ),
            ("[[target]]\nname = \"a\"\ngroup = \"ff12::4242\"\niface = \"127.0.0.1\"\n", "ff12::4242"),
        ];
        for (text, want) in cases {
            let e = format!("{:#}", load(text).unwrap_err());
            assert!(e.starts_with("--config ") && e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_target_probes_its_groups_in_turn() {
        let g = |s: &str| s.parse::<IpAddr>().unwrap();
        let t = load("[[target]]\nname = \"iptv\"\ngroups = \"239.1.0.0/22\"\nrate = 1000\n").unwrap();
        let p = &t[0].probe;
        assert_eq!(
            (p.groups.len(), p.groups[0], p.groups[1023], p.group),
            (1024, g("239.1.0.0"), g("239.1.3.255"), g("239.1.0.0"))
        );
        assert_eq!((p.port, p.count), (crate::cli::DEFAULT_PORT, 10_000), "10 rounds of 1024 groups a window, nearly");
        // The port after the list; the same port given twice is fine.
        let t = load("[[target]]\nname = \"a\"\ngroups = \"239.1.1.1-239.1.1.4:5000\"\nport = 5000\n").unwrap();
        assert_eq!((t[0].probe.groups.len(), t[0].probe.port), (4, 5000));
        // Without `groups`, one group.
        let t = load("[[target]]\nname = \"a\"\n").unwrap();
        assert_eq!(t[0].probe.groups, [g(crate::cli::DEFAULT_GROUP)]);
        // Two targets may probe groups of the same range on other ports.
        let t = load("[[target]]\nname = \"a\"\ngroups = \"239.1.0.0/24\"\nrate = 100\n[[target]]\nname = \"b\"\ngroups = \"239.1.0.0/24\"\nrate = 100\nport = 6000\n")
            .unwrap();
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn group_errors_name_the_target_the_field_and_the_value() {
        let cases = [
            (
                "[[target]]\nname = \"a\"\ngroup = \"239.1.1.1\"\ngroups = \"239.1.0.0/24\"\n",
                "target 'a': fields 'group' and 'groups': give one of them",
            ),
            ("[[target]]\nname = \"a\"\ngroups = \"10.0.0.0/30\"\n", "target 'a': field 'groups': '10.0.0.0/30': not all multicast"),
            ("[[target]]\nname = \"a\"\ngroups = \"239.0.0.0/8\"\n", "target 'a': field 'groups'"),
            (
                "[[target]]\nname = \"a\"\ngroups = \"239.1.0.0/24:5000\"\nport = 6000\n",
                "target 'a': fields 'groups' and 'port': the list says port 5000, 'port' 6000",
            ),
            (
                "[[target]]\nname = \"a\"\ngroups = \"239.1.0.0/22\"\nrate = 50\nwindow = \"10s\"\n",
                "target 'a': field 'window' 10s holds 500 probes at field 'rate' 50, fewer than the 1024 groups",
            ),
            (
                "[[target]]\nname = \"a\"\ngroups = \"239.1.0.0/24\"\nrate = 100\n[[target]]\nname = \"b\"\ngroups = \"239.1.0.200-239.1.1.10\"\nrate = 100\n",
                "target 'b': fields 'group', 'port' and 'iface': target 'a' probes the same group, port and interface (239.1.0.200)",
            ),
            (
                "[[target]]\nname = \"a\"\ngroups = \"239.1.0.0/21\"\nrate = 1000\n[[target]]\nname = \"b\"\ngroups = \"239.2.0.0/21\"\nrate = 1000\n\
                 [[target]]\nname = \"c\"\ngroup = \"239.3.0.0\"\n",
                "target 'c': field 'groups': 4097 groups in the [[target]] tables so far; serve probes at most 4096",
            ),
        ];
        for (text, want) in cases {
            let e = format!("{:#}", load(text).unwrap_err());
            assert!(e.starts_with("--config ") && e.contains(want), "{text:?}: {e}");
        }
        // One list may hold as many groups as all targets together.
        assert_eq!(bounds::MAX_TARGET_GROUPS, crate::cli::MAX_GROUPS);
    }

    #[test]
    fn a_mesh_target_answers_its_group_and_does_not_probe_itself() {
        let t = load("[[target]]\nname = \"m\"\nmesh = true\nhosts = [\"127.0.0.1\", \"127.0.0.2\"]\n").unwrap();
        let m = t[0].mesh.as_ref().expect("a mesh target");
        assert_eq!((m.responder.group, m.responder.port), (t[0].probe.group, t[0].probe.port));
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(t[0].probe.hosts, ["127.0.0.2".parse::<IpAddr>().unwrap()], "{local} is this host's");
        assert_eq!(t[0].probe.interval, MESH_DEFAULT_INTERVAL, "1 probe/s unless given");
        assert!(load("[[target]]\nname = \"a\"\n").unwrap()[0].mesh.is_none());
        let e = load("[[target]]\nname = \"m\"\nmesh = true\ngroups = \"239.1.0.0/30\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("target 'm': field 'mesh': a mesh probes and answers one group"), "{e:#}");
    }
}
