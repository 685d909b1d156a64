//! Command-line definitions (clap only) of the commands added after the first four: `max-rate`,
//! `mesh`, `serve`, `completions` and `man`. Their engines import these, never the reverse.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{parse_duration, parse_percent, parse_rate, GroupArgs, KeyArgs};

#[derive(Debug, Args)]
#[command(after_help = "\
Finds, per responder, the highest rate at which it loses at most --loss-tolerance over a whole
trial: steps up from --start (doubling), bisects between the last pass and the first failure,
then repeats one trial at the result to confirm it (RFC 2544's throughput test, per receiver as
RFC 3918 does for multicast). A probe that is lost, late or rate-limited counts against the
responder. For the first failing step it says where the probes went: forward (never reached the
responder), return (acks lost), or dropped on this host (its socket buffer, or a sender that
could not keep the rate), so a limit of this host is not blamed on the network.

Responders limit each prober to 10000 probes/s by default: to search above that, start them with
`respond --rate-limit 0` (or a higher limit).

Examples:
  mcprobe max-rate --iface eth0
  mcprobe max-rate --iface eth0 --trial 10s --max 200000 --loss-tolerance 0.01 --out rate/
  mcprobe max-rate --iface eth0 --min-rate 20000     exit 1 if any responder stays below

Exit codes: 0 success; 1 the weakest responder is below --min-rate, or nobody answered;
2 usage or environment error.")]
pub struct MaxRateArgs {
    #[command(flatten)]
    pub net: GroupArgs,

    #[command(flatten)]
    pub key: KeyArgs,

    #[command(flatten)]
    pub ack: super::ack_port::AckPortArgs,

    /// How long each trial sends at one rate.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub trial: Duration,

    /// The loss a responder may have in a trial and still pass, in percent of the probes sent.
    #[arg(long, value_name = "PCT", default_value_t = 0.0, value_parser = parse_percent)]
    pub loss_tolerance: f64,

    /// First rate tried, probes per second.
    #[arg(long, value_name = "RATE", default_value_t = 1000.0, value_parser = parse_rate)]
    pub start: f64,

    /// Highest rate tried, probes per second.
    #[arg(long, visible_alias = "max-rate", value_name = "RATE", default_value_t = 100_000.0, value_parser = parse_rate)]
    pub max: f64,

    /// Stop bisecting when the bracket is narrower than this, in percent of its lower end.
    #[arg(long, value_name = "PCT", default_value_t = 5.0, value_parser = parse_percent)]
    pub resolution: f64,

    /// Exit 1 if the weakest responder's rate is below this.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub min_rate: Option<f64>,

    /// At most this many trials, whatever the responders do.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_trials: u32,

    /// Probe size in bytes (UDP payload).
    #[arg(short, long, default_value_t = 128, value_parser = clap::value_parser!(u16).range(64..=65507))]
    pub size: u16,

    /// IP TTL of probes.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: u32,

    /// An ack slower than this is late (its probe counts as unanswered); also the wait after
    /// each trial's last probe.
    #[arg(short = 'W', long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Write trials.csv (one row per trial and responder) and maxrate.csv (one per responder).
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// No progress and no line per trial on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Run the same command on every host of the list, at about the same time. Each host answers the
others' probes (as `respond`) and probes them (as `probe --hosts`, multicast and unicast) from
one process, then prints its row of the mesh: per peer, loss by direction, RTT and a verdict.
With --out each host writes an ordinary `probe` report folder; collect them and merge the rows
into the N x N matrix with `mcprobe report host1/ host2/ ... --to mesh/`.

Denominators: hosts start at different times, so a peer's loss counts from its first answer on
each path (`lost_after_first` / `sent_after_first` in summary.csv). This host keeps answering
for --linger after its last probe, so peers that started later are not charged with its exit.
A peer that never answered is a finding (verdict `unreachable` or `multicast-lost`), not an
error.

Examples:
  mcprobe mesh --iface eth0 --hosts 10.0.0.11,10.0.0.12,10.0.0.13 --out mesh-$(hostname)/
  mcprobe mesh --iface eth0 --hosts-file cluster.txt --duration 1m --rate 100

Exit codes: 0 every peer ok; 1 some peer's verdict is not ok; 2 usage or environment error;
3 some peer is multicast-lost (multicast broken where unicast works; takes precedence over 1).")]
pub struct MeshArgs {
    #[command(flatten)]
    pub net: GroupArgs,

    #[command(flatten)]
    pub key: KeyArgs,

    #[command(flatten)]
    pub ack: super::ack_port::AckPortArgs,

    /// Every host of the mesh, this one included (addresses or names, comma-separated).
    #[arg(long, value_name = "HOST,...", value_delimiter = ',', required_unless_present = "hosts_file")]
    pub hosts: Vec<String>,

    /// Read the hosts from a file: one per line, `#` starts a comment.
    #[arg(long, value_name = "PATH")]
    pub hosts_file: Option<PathBuf>,

    /// Probes per second (each peer also gets as many unicast probes).
    #[arg(short, long, default_value_t = 10.0, value_parser = parse_rate)]
    pub rate: f64,

    /// How long to probe.
    #[arg(short, long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,

    /// How long to keep answering after the last probe, for peers that started later.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub linger: Duration,

    /// Loss above this percentage (from a peer's first answer) makes a path bad.
    #[arg(long, value_name = "PCT", default_value_t = 1.0, value_parser = parse_percent)]
    pub max_loss: f64,

    /// An ack slower than this is late (its probe counts as lost).
    #[arg(short = 'W', long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// IP TTL of probes.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: u32,

    /// Name in this host's acks (at most 64 bytes). Default: the host name.
    #[arg(short, long)]
    pub name: Option<String>,

    /// This host's report folder (summary.csv, intervals.csv, outages.csv, mesh.csv).
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// No informational lines on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9798";
pub const DEFAULT_MAX_SERIES: usize = 1000;

#[derive(Debug, Args)]
#[command(after_help = "\
Probes without end in windows of --window, and serves what it measured at /metrics (Prometheus
text, or OpenMetrics when asked), /healthz and / on --listen. The metrics name the hosts of the
LAN: keep --listen on loopback or a management network, and let only Prometheus reach it.

With --ack-port, windows take two blocks of ports in turn (PORT, and PORT+1+N with N --hosts),
as each window waits for its late acks while the next one probes: open both in a firewall.

Examples:
  mcprobe serve --iface eth0                              one target, metrics on 127.0.0.1:9798
  mcprobe serve --iface eth0 --hosts 10.0.0.11,10.0.0.12 --listen 10.9.0.5:9798
  mcprobe serve --config /etc/mcprobe/serve.toml          several targets (see contrib/)")]
pub struct ServeArgs {
    #[command(flatten)]
    pub net: GroupArgs,

    #[command(flatten)]
    pub key: KeyArgs,

    #[command(flatten)]
    pub ack: super::ack_port::AckPortArgs,

    /// The target's name (the `target` label).
    #[arg(long = "name", value_name = "NAME", default_value = "default")]
    pub target: String,

    /// IP TTL of probes.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: u32,

    /// Probe size in bytes (UDP payload).
    #[arg(short, long, default_value_t = 128, value_parser = clap::value_parser!(u16).range(64..=65507))]
    pub size: u16,

    /// Time between probes. Default 100ms.
    #[arg(short = 'I', long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "rate")]
    pub interval: Option<Duration>,

    /// Probes per second (instead of --interval).
    #[arg(short, long, value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Expected hosts (comma-separated): unicast probes beside multicast, a verdict per host.
    #[arg(long, value_name = "HOST,...", value_delimiter = ',')]
    pub hosts: Vec<String>,

    /// Expected hosts from a file, one per line.
    #[arg(long, value_name = "PATH")]
    pub hosts_file: Option<PathBuf>,

    /// An ack slower than this is late; each window waits this long for acks after its last probe.
    #[arg(short = 'W', long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Probes are accounted in back-to-back windows of this length; metrics move once per window.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub window: Duration,

    /// Consecutive unanswered probes that make an outage.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub outage_min: u64,

    /// mcprobe_querier_silent turns 1 when no IGMP/MLD membership query was heard on the
    /// interface for this long: snooping switches then drop the group. Listening needs
    /// CAP_NET_RAW (without it, a one-line notice and mcprobe_querier_watching 0). Default: the
    /// querier's interval + 10s (135s before any query is heard).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub querier_wait: Option<Duration>,

    /// Address and port of the HTTP server.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// A responder silent this long leaves the metrics.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub forget: Duration,

    /// Most series (responder × path) kept per target; more are refused and counted.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_SERIES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_series: usize,

    /// Targets from a TOML file (one `[[target]]` table each) instead of the target flags.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["group", "port", "iface", "ack_port", "target", "ttl", "size", "interval", "rate", "hosts", "hosts_file", "window", "timeout", "outage_min", "querier_wait"])]
    pub config: Option<PathBuf>,

    /// Log only errors (no line per responder that appears, goes silent or restarts).
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  mcprobe completions bash > /etc/bash_completion.d/mcprobe
  mcprobe completions zsh > ~/.zfunc/_mcprobe")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  mcprobe man | man -l -
  mcprobe man serve > mcprobe-serve.1")]
pub struct ManArgs {
    /// A subcommand's page (mcprobe-SUBCOMMAND(1)) instead of the main one.
    #[arg(value_name = "SUBCOMMAND")]
    pub command: Option<String>,
}
