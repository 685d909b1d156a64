//! Command-line definitions (clap derive) and the value parsers they use. No behaviour here.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub mod ack_port;
pub mod commands;
pub mod doctor;

/// Default group: in 239.255.0.0/16, the IPv4 local scope of administratively scoped multicast
/// (RFC 2365), which routers at the site boundary do not forward.
pub const DEFAULT_GROUP: &str = "239.255.42.42";
/// Default UDP port: a fixed one, so responders and probers meet without configuration.
pub const DEFAULT_PORT: u16 = 24242;

const EXAMPLES: &str = "\
Examples:
  mcprobe demo                                   5 responders on loopback, a 3-second probe, CSVs
  mcprobe respond --iface eth0                   on every host of the LAN
  mcprobe probe --iface eth0 --duration 30s --out report/
  mcprobe probe --iface eth0 --rate 1000 --count 10000 --max-loss 0.1 --min-responders 12
  mcprobe probe --iface eth0 --hosts-file cluster.txt --preset soak
  mcprobe discover --iface eth0                  who answers, in under a second
  mcprobe report h1/ h2/ --to lan/               report.html from --out folders, merged

Exit codes: 0 success; 1 a threshold (--max-loss, --min-responders) was not met, an expected
host (--hosts) is not ok, or no responder answered at all; 2 usage or environment error (bad
flag value, unknown interface, port in use); 3 multicast broken where unicast works (--hosts);
130 a second Ctrl-C (the first one stops the run and still reports).";

#[derive(Debug, Parser)]
#[command(
    name = "mcprobe",
    version,
    about = "Measure LAN multicast: which hosts answer, their latency and their loss",
    long_about = "Measure LAN multicast. A prober sends numbered probes to a multicast group; a \
responder on every host answers each one with a unicast ack. mcprobe reports, per responder, \
RTT percentiles from a histogram, loss split into forward (probe lost) and return (ack lost), \
duplicates, reordering, jitter and time to the first ack, live and as CSV.",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join the group and answer every probe with an ack (run on each host; until Ctrl-C).
    Respond(RespondArgs),
    /// Send probes to the group and report every responder's latency and loss.
    Probe(ProbeArgs),
    /// A short burst: list the responders that answer (name, address, RTT) and count them.
    Discover(DiscoverArgs),
    /// Start responders on loopback, probe them for a few seconds, print and save the report.
    Demo(DemoArgs),
    /// Find each responder's highest loss-free probe rate (RFC 2544 throughput, per receiver).
    MaxRate(commands::MaxRateArgs),
    /// Every host of a list answers and probes every other one; each prints its row of the mesh.
    Mesh(commands::MeshArgs),
    /// Write report.html from report folders (`probe --out`); several folders are merged.
    Report(ReportArgs),
    /// Probe without end and serve the figures to Prometheus (/metrics).
    Serve(commands::ServeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(commands::CompletionsArgs),
    /// Print the man page (roff), or a subcommand's.
    Man(commands::ManArgs),
    /// Check this host for what silently breaks multicast, with the command that fixes each.
    Doctor(doctor::DoctorArgs),
}

#[derive(Debug, Args, Clone)]
pub struct GroupArgs {
    /// Multicast group: IPv4 (224.0.0.0/4) or IPv6 (ff0X::, ff1X::, ff3X::; needs --iface).
    #[arg(short, long, value_name = "ADDR", default_value = DEFAULT_GROUP)]
    pub group: IpAddr,

    /// UDP port of the group.
    #[arg(short, long, default_value_t = DEFAULT_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// Interface, by name (eth0) or by one of its IPv4 addresses. Default: the system's choice,
    /// i.e. the interface of the route to the group.
    #[arg(short, long, value_name = "IFACE")]
    pub iface: Option<String>,

    /// Socket receive buffer, in bytes (suffixes k, M). The kernel caps it at net.core.rmem_max.
    #[arg(long, value_name = "BYTES", default_value = "4M", value_parser = parse_size)]
    pub rcvbuf: usize,
}

/// Authentication: off by default, like ping. Both ends must use the same secret.
#[derive(Debug, Args, Clone)]
pub struct KeyArgs {
    /// Shared secret: probes and acks carry a keyed BLAKE3 MAC, and anything without a valid one
    /// is ignored and counted. Visible to other local users in the process list: prefer
    /// --key-file or the MCPROBE_KEY environment variable.
    #[arg(long, value_name = "SECRET", env = "MCPROBE_KEY", hide_env_values = true, conflicts_with = "key_file")]
    pub key: Option<String>,

    /// Read the shared secret from a file (surrounding whitespace is ignored).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  mcprobe respond --iface eth0 --name rack1-node7
  mcprobe respond --iface eth0 --allow 10.20.0.0/16 --key-file /etc/mcprobe.key")]
pub struct RespondArgs {
    #[command(flatten)]
    pub net: GroupArgs,

    #[command(flatten)]
    pub key: KeyArgs,

    /// Probes per second answered per source address (bursts of a tenth of that, at least 100).
    /// Probes over the limit are counted and the count travels in later acks, so the prober
    /// shows them as rate-limited, not as loss. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = crate::responder::DEFAULT_RATE_LIMIT)]
    pub rate_limit: u32,

    /// Acks per second for all sources together (bursts of a tenth of that): many sources, forged
    /// or not, cannot multiply --rate-limit. Counted like --rate-limit. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = crate::responder::DEFAULT_TOTAL_RATE_LIMIT)]
    pub total_rate_limit: u32,

    /// With --key: answer only probes sent within this of this host's clock, either way (both
    /// hosts' CLOCK_REALTIME; keep them in sync with NTP). At most 60s. Probes outside it are
    /// counted as stale and each source is named once in a line.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub max_clock_skew: Duration,

    /// Answer only probes from this network (CIDR, or a single address); repeatable.
    /// Default: any source.
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    pub allow: Vec<ipnet::IpNet>,

    /// Join source-specifically (SSM, IGMPv3/MLDv2): accept the group's traffic only from this
    /// sender, e.g. the prober's address. Usually with an SSM group (232.0.0.0/8, ff3X::).
    #[arg(long, value_name = "ADDR")]
    pub source: Option<IpAddr>,

    /// Behave like the course lab's receiver: answer `ack` to any datagram of 3 bytes or more.
    #[arg(long, conflicts_with_all = ["key", "key_file"])]
    pub plain: bool,

    /// Warn when no IGMP/MLD membership query was heard for this long: snooping switches then
    /// drop the group. Listening needs CAP_NET_RAW (without it, a one-line notice). Default: the
    /// querier's interval + 10s (135s before any query is heard).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub querier_wait: Option<Duration>,

    /// Name sent in acks (at most 64 bytes). Default: the host name.
    #[arg(short, long)]
    pub name: Option<String>,

    /// Print only errors: no line per session, no summary.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Durations take a unit (500us, 10ms, 2s, 10m); a bare number means seconds, as in ping.

Examples:
  mcprobe probe --iface eth0                            10 s at 10 probes/s, table on stdout
  mcprobe probe --iface eth0 --rate 1000 --count 5000 --out run1/ --raw
  mcprobe probe --iface eth0 --duration 10m --interval 1s --max-loss 0.5
  # unicast beside multicast for each expected host, and a verdict per host:
  mcprobe probe --iface eth0 --hosts 10.0.0.11,10.0.0.12,10.0.0.13
  # 10 minutes at 1/s, longer than two IGMP timeouts; outages listed, and whether the
  # IGMP querier went quiet (as root: the querier watch needs CAP_NET_RAW):
  mcprobe probe --iface eth0 --hosts-file cluster.txt --preset soak
  # warn when no membership query came for 30 s:
  mcprobe probe --iface eth0 --duration 2m --querier-wait 30s
  # behind this host's firewall: acks to a fixed port, opened in the firewall
  # (nft insert rule inet filter input udp dport 24243 accept):
  mcprobe probe --iface eth0 --ack-port 24243
  # IPv6 (an interface is required):
  mcprobe probe --iface eth0 --group ff12::4242
  # the course lab's protocol, against its Python receivers:
  mcprobe probe --iface eth0 --plain --group 224.3.29.71 --port 10000

Table columns: SENT probes sent; RCVD acks on time; LOSS% lost/sent; FWD probes that never
reached the responder; HOST of those, the ones its own host dropped (socket buffer full, as it
reports; shown when there are some); RET acks lost on the way back; UNK lost, direction unknown
(probes after the newest ack); LIM probes the responder chose not to answer (its --rate-limit;
not loss; shown when there are some); DUP duplicate acks; REOR acks that arrived after a
higher-numbered one; LATE acks slower than --timeout (their probes count as lost);
MIN/P50/P99/MAX round-trip times; JIT RFC 3550 jitter; 1ST time from the first probe to the
responder's first ack; JOIN its join delay, for a responder that joined during the run.

Exit codes: 0 success; 1 a threshold was not met, an expected host is not ok, or no responder
answered at all; 2 usage or environment error; 3 multicast broken where unicast works (--hosts).")]
pub struct ProbeArgs {
    #[command(flatten)]
    pub net: GroupArgs,

    #[command(flatten)]
    pub key: KeyArgs,

    #[command(flatten)]
    pub ack: ack_port::AckPortArgs,

    /// IP TTL of probes. 1 keeps them on the local segment; raise it to cross multicast routers.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: u32,

    /// Probe size in bytes (UDP payload). At least 64, the size of an ack, so an ack is never
    /// larger than its probe. The responder name travels in what is left: the default carries
    /// names of up to 63 bytes.
    #[arg(short, long, default_value_t = 128, value_parser = clap::value_parser!(u16).range(64..=65507))]
    pub size: u16,

    /// Time between probes.
    #[arg(short = 'I', long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "rate")]
    pub interval: Option<Duration>,

    /// Probes per second (instead of --interval). Default 10.
    #[arg(short, long, value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// When probes leave: `fixed` intervals, or `poisson` (random gaps with --interval as their
    /// mean, which cannot phase-lock with periodic network events).
    #[arg(long, value_enum, default_value_t = ScheduleArg::Fixed)]
    pub schedule: ScheduleArg,

    /// `soak`: 10 minutes at 1 probe/s, longer than two IGMP membership timeouts (260 s each), to
    /// catch a LAN whose snooping switches drop the group because no querier refreshes it.
    /// --interval, --rate, --count and --duration still override it.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,

    /// Warn when no IGMP/MLD membership query was heard for this long: snooping switches then
    /// drop the group. Listening needs CAP_NET_RAW (without it, a one-line notice). Default: the
    /// querier's interval + 10s (135s before any query is heard).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub querier_wait: Option<Duration>,

    /// An outage is at least this many consecutive unanswered probes after a responder's first
    /// answer; each is listed with its start, end and probes lost (outages.csv).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub outage_min: u64,

    /// The hosts that should answer (addresses or names, comma-separated). Missing and unexpected
    /// responders are reported, and each host also gets unicast probes, interleaved with the
    /// multicast ones, so that each gets a verdict comparing the two paths.
    #[arg(long, value_name = "HOST,...", value_delimiter = ',', conflicts_with = "plain")]
    pub hosts: Vec<String>,

    /// Read the expected hosts from a file: one per line, `#` starts a comment.
    #[arg(long, value_name = "PATH", conflicts_with = "plain")]
    pub hosts_file: Option<PathBuf>,

    /// Number of probes to send.
    #[arg(short, long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// How long to send probes. Default 10s (when --count is not given).
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// An ack slower than this is late (counted, but its probe is lost). Also how long the
    /// prober waits for acks after its last probe.
    #[arg(short = 'W', long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Width of one row of intervals.csv.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_report_interval)]
    pub report_interval: Duration,

    /// Write summary.csv, intervals.csv and outages.csv (and probes.csv with --raw) into this
    /// folder.
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Also write probes.csv: one row per probe and responder (needs --out).
    #[arg(long, requires = "out")]
    pub raw: bool,

    /// Also write report.html into the --out folder (see `mcprobe report`).
    #[arg(long, requires = "out")]
    pub html: bool,

    /// Print the summary as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Speak the course lab's protocol: send a plain message and count every host that answers
    /// anything, by source address. Works with `respond --plain` and the lab's Python receiver.
    /// Replies carry no sequence number, so each is taken as the answer to the newest message:
    /// keep the interval longer than the RTT. Loss cannot be split by direction.
    #[arg(long, conflicts_with_all = ["key", "key_file"])]
    pub plain: bool,

    /// The message --plain sends.
    #[arg(long, value_name = "TEXT", default_value = "very important data", requires = "plain")]
    pub message: String,

    /// No progress display and no informational lines on stderr.
    #[arg(short, long)]
    pub quiet: bool,

    /// Exit 1 if any responder lost more than PCT percent of the probes. With --hosts it is also
    /// the loss above which a path counts as bad in the verdicts (default there: 1).
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    pub max_loss: Option<f64>,

    /// Exit 1 if fewer than N responders answered.
    #[arg(long, value_name = "N")]
    pub min_responders: Option<usize>,
}

#[derive(Debug, Args)]
#[command(after_help = "\
A census, like fping's: a few probes, a short wait, one line per responder with its median
RTT. Exit code 1 when no responder or fewer than --min-responders answered.

Examples:
  mcprobe discover --iface eth0
  mcprobe discover --iface eth0 --min-responders 12 --json")]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub net: GroupArgs,

    #[command(flatten)]
    pub key: KeyArgs,

    #[command(flatten)]
    pub ack: ack_port::AckPortArgs,

    /// IP TTL of probes.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: u32,

    /// Probes in the burst (a responder counts if it answers any of them).
    #[arg(short, long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub count: u64,

    /// How long to wait for acks after the last probe (as `probe --timeout`).
    #[arg(short = 'W', long, visible_alias = "wait", value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Exit 1 if fewer than N responders answered.
    #[arg(long, value_name = "N")]
    pub min_responders: Option<usize>,

    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Responders to start on loopback.
    #[arg(short = 'n', long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=200))]
    pub responders: u8,

    /// How long to probe.
    #[arg(short, long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Probes per second.
    #[arg(short, long, default_value_t = 200.0, value_parser = parse_rate)]
    pub rate: f64,

    /// Folder for the CSV reports. Default: a new folder under the system's temporary directory.
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// No progress display.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mcprobe report run1/                        run1/report.html
  mcprobe report h1/ h2/ h3/ --to lan/        lan/report.html and lan/matrix.csv: prober x responder
  mcprobe report mon/ tue/ wed/ --to trend/   one prober at different times: a trend table")]
pub struct ReportArgs {
    /// Report folders written by `probe --out` or `demo`.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,

    /// Folder for report.html (and matrix.csv). Default: the folder itself, or with several
    /// folders the current one.
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    Soak,
}

/// `--schedule`: the engine's `Schedule`, as the command line spells it (config maps it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleArg {
    /// Exactly one interval apart.
    Fixed,
    /// Exponentially distributed gaps with the interval as their mean (a Poisson process).
    Poisson,
}

/// Parses a duration: `250us`, `10ms`, `2s`, `1m30s`; a bare number is seconds (`0.5`, `3`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(format!("'{s}' is not a duration between 0 and 10^9 seconds"));
        }
        Duration::from_secs_f64(secs)
    } else {
        humantime::parse_duration(s).map_err(|e| format!("'{s}' is not a duration ({e}); try 10ms, 2s or 10m"))?
    };
    if d.is_zero() {
        return Err("the duration must be greater than 0".into());
    }
    Ok(d)
}

/// Parses `10.0.0.0/8` or a single address (`192.0.2.7`, taken as /32).
pub fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("'{s}' is not a network (10.0.0.0/8) or an address"))
}

/// Parses a rate in probes per second, from 0.001 (one every 1000 s) to 1 million.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && (0.001..=1e6).contains(&r) => Ok(r),
        _ => Err(format!("'{s}' is not a rate between 0.001 and 1000000 probes/s")),
    }
}

/// Parses `--report-interval`: at least 10 ms, so a long run cannot ask for millions of rows.
pub fn parse_report_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(10) {
        return Err(format!("'{s}' is shorter than the shortest report interval, 10ms"));
    }
    Ok(d)
}

/// Parses a percentage between 0 and 100.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("'{s}' is not a percentage between 0 and 100")),
    }
}

/// Parses a byte count: `65536`, `512k`, `4M` (powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1usize << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        _ => (t, 1),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| (1024..=1 << 30).contains(&n))
        .ok_or_else(|| format!("'{s}' is not a size between 1k and 1024M bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_take_units_and_bare_seconds() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("fast").unwrap_err().contains("'fast'"));
    }

    #[test]
    fn sizes_rates_and_percentages() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert!(parse_size("12").is_err());
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_rate("1000"), Ok(1000.0));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("NaN").is_err());
        assert!(parse_rate("1e-20").is_err());
        assert_eq!(parse_rate("0.001"), Ok(0.001));
        assert!(parse_report_interval("1ns").is_err());
        assert_eq!(parse_report_interval("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_percent("0.5%"), Ok(0.5));
        assert!(parse_percent("101").is_err());
    }
}

#[cfg(test)]
mod help {
    use super::*;
    use clap::CommandFactory;

    /// `--help` of the program and of each command, as a user sees it at 100 columns.
    fn help(path: &[&str]) -> String {
        let mut cmd = Cli::command().term_width(100);
        cmd.build();
        let mut c = &mut cmd;
        for name in path {
            c = c.find_subcommand_mut(name).expect("a subcommand");
        }
        c.render_long_help().to_string()
    }

    #[test]
    fn help_pages() {
        insta::assert_snapshot!("mcprobe", help(&[]));
        for cmd in Cli::command().get_subcommands().map(|c| c.get_name().to_string()).filter(|n| n != "help") {
            insta::assert_snapshot!(cmd.clone(), help(&[&cmd]));
        }
    }
}
