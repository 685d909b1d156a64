//! Each command's flags: the shared groups of [`super::flags`] plus what only that command takes.
//! Their engines never import these; [`crate::config`] turns them into validated configurations.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::flags::*;
use super::parse::{parse_duration, parse_net, parse_percent, parse_rate, parse_report_interval};

/// The columns of the probe table, for `probe --help` (a macro, so `concat!` can take it).
macro_rules! table_columns {
    () => {
        "\
Table columns: SENT probes sent; RCVD acks on time; LOSS% lost/sent; FWD probes that never
reached the responder; HOST of those, the ones its own host dropped (socket buffer full, as it
reports; shown when there are some); UNTOLD of those, the ones lost after its latest such report
(its host's or the network's, not yet told); RET acks lost on the way back; UNK lost, direction
unknown (probes after the newest ack); LIM probes the responder chose not to answer (its
--rate-limit; not loss; shown when there are some); DUP duplicate acks; REOR acks that arrived
after a higher-numbered one; LATE acks slower than --timeout (their probes count as lost);
MIN/MAX the fastest and slowest round trip, exact; P50/P99 round-trip percentiles from a
histogram, within 1/128 (0.8 %) of the exact value; JIT RFC 3550 jitter; 1ST time from the first
probe to the responder's first ack; JOIN its join delay, for a responder that joined during the
run."
    };
}

/// Default per-source limit, probes per second: far above any LAN check, low enough that a
/// responder cannot be driven to use a whole core by one source.
pub const DEFAULT_RATE_LIMIT: u32 = 10_000;
/// Default budget of the whole responder, acks per second across all sources. Above what one
/// host's prober can send (the loss-free rate search tops out near 100 000 probes/s on the
/// reference machine; a fast host near 200 000) and what a mesh of a few hundred hosts at 1000/s
/// sends, so it caps no normal run; low enough that a thousand forged sources, each under the
/// per-source limit, cannot make one responder send the 10 million acks/s they could ask for.
pub const DEFAULT_TOTAL_RATE_LIMIT: u32 = 250_000;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  mcprobe respond --iface eth0 --name rack1-node7
  mcprobe respond --iface eth0 --allow 10.20.0.0/16 --key-file /etc/mcprobe.key
  # 1000 groups (IPTV channels, a group per feed), a socket for each:
  mcprobe respond --iface eth0 --groups 239.1.0.0/22
  # channel zapping over 128 groups, a leave every 10 s and its rejoin 5 s later; join and
  # leave delays per group go to the prober (probe --groups 239.1.1.0/25 --size 200):
  mcprobe respond --iface eth0 --groups 239.1.1.0/25 --churn 10s")]
pub struct RespondArgs {
    #[command(flatten)]
    pub net: GroupArgs,

    #[command(flatten)]
    pub groups: GroupsArgs,

    #[command(flatten)]
    pub key: KeyArgs,

    /// Probes per second answered per source address (bursts of a tenth of that, at least 100).
    /// Probes over the limit are counted and the count travels in later acks, so the prober
    /// shows them as rate-limited, not as loss. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RATE_LIMIT)]
    pub rate_limit: u32,

    /// Acks per second for all sources together (bursts of a tenth of that): many sources, forged
    /// or not, cannot multiply --rate-limit. Counted like --rate-limit. 0: no limit.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TOTAL_RATE_LIMIT)]
    pub total_rate_limit: u32,

    /// With --key: answer only probes sent within this of this host's clock, either way (both
    /// hosts' CLOCK_REALTIME; keep them in sync with NTP). At most 60s. Probes outside it are
    /// counted as stale and each source is named once in a line.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub max_clock_skew: Duration,

    /// Answer only probes from this network (CIDR, or a single address); repeatable.
    /// Default: any source.
    #[arg(long, value_name = "CIDR", value_parser = parse_net)]
    pub allow: Vec<ipnet::IpNet>,

    /// Join source-specifically (SSM, IGMPv3/MLDv2): accept the group's traffic only from this
    /// sender (for `respond`, usually the prober's address; with `watch --pcap`, only this
    /// sender's datagrams are read). Usually with an SSM group (232.0.0.0/8, ff3X::).
    #[arg(long, value_name = "ADDR")]
    pub source: Option<IpAddr>,

    /// Channel zapping: after joining every group, every PERIOD leave the next group in turn
    /// and join it again PERIOD/2 later (one group out at a time). Each join's and leave's delay
    /// (from the membership report leaving this host to the group's first / last probe
    /// arriving, RFC 3918) is measured per group and sent to the prober in the acks (probes of
    /// at least 200 bytes: --size 200). PERIOD/2 must exceed the LAN's leave delay. As root
    /// (CAP_NET_RAW) timed at the interface; else from the join system call, leaves unmeasured.
    /// Needs --groups: one group left and joined would leave the responder deaf half the time.
    #[arg(long, value_name = "PERIOD", requires = "groups", value_parser = parse_duration)]
    pub churn: Option<Duration>,

    /// Send the acks of one batch to one prober as a UDP GSO train: the kernel walks its stack
    /// once for the lot, so a small host answers ~200 000 probes/s instead of ~140 000. On a
    /// physical NIC each ack still leaves as its own frame; but a software bridge, veth, virtual
    /// NIC, nftables or netem on the path sees the train as one packet and drops it whole, so
    /// independent return loss turns into bursts (outages). For max-rate on clean paths only.
    #[arg(long)]
    pub ack_trains: bool,

    #[command(flatten)]
    pub plain: PlainArgs,

    #[command(flatten)]
    pub ramp: RampArgs,

    #[command(flatten)]
    pub querier: QuerierArgs,

    #[command(flatten)]
    pub name: NameArgs,

    /// No progress display and no informational lines on stderr; errors and threshold misses are
    /// still printed.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(after_help = concat!("\
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
  # IPv6 (an interface is required):
  mcprobe probe --iface eth0 --group ff12::4242
  # 1000 groups, one probe a second each; the table names the groups each host misses:
  mcprobe probe --iface eth0 --groups 239.1.0.0/22 --rate 1000 --duration 30s
  # the course lab's protocol, against its Python receivers:
  mcprobe probe --iface eth0 --plain --group 224.3.29.71 --port 10000

", table_columns!(), "

Exit codes: 0 success; 1 a threshold was not met, an expected host is not ok, or no responder
answered at all; 2 usage or environment error; 3 multicast broken where unicast works (--hosts)."))]
pub struct ProbeArgs {
    #[command(flatten)]
    pub net: GroupArgs,

    #[command(flatten)]
    pub groups: GroupsArgs,

    #[command(flatten)]
    pub key: KeyArgs,

    #[command(flatten)]
    pub send: SendArgs,

    #[command(flatten)]
    pub pace: PaceArgs,

    #[command(flatten)]
    pub length: LengthArgs,

    /// When probes leave: `fixed` intervals, or `poisson` (random gaps with --interval as their
    /// mean, which cannot phase-lock with periodic network events).
    #[arg(long, value_enum, default_value_t = ScheduleArg::Fixed)]
    pub schedule: ScheduleArg,

    /// How the sender waits for each probe's time. `lean`: it sleeps until that time on an
    /// absolute timer and sends when it wakes, so a probe leaves as late as this machine wakes a
    /// thread (tens of µs on a VM; the summary's send lateness), at the CPU cost of any sleeper
    /// (gaps under 20 µs, above ~50 000/s, are waited out awake). `precise`: it wakes early and
    /// spins the rest, so probes leave within a µs of their time, at the cost of a busy CPU (half
    /// a core or more from 10 000/s), and on a busy machine its worst 1 % are no better than
    /// lean's unless it runs with --realtime. `auto`: precise with --realtime, lean without. Lateness never enters the RTT: each probe carries the time it
    /// actually left.
    #[arg(long, value_enum, default_value_t = PacingArg::Auto)]
    pub pacing: PacingArg,

    /// Run the prober under SCHED_FIFO (priority 50) with its memory locked (mlockall), so a busy
    /// machine's other processes do not delay the probes; needs root or CAP_SYS_NICE (and
    /// CAP_IPC_LOCK), otherwise a one-line notice and the normal scheduler.
    #[arg(long)]
    pub realtime: bool,

    /// `soak`: 10 minutes at 1 probe/s, longer than two IGMP membership timeouts (260 s each), to
    /// catch a LAN whose snooping switches drop the group because no querier refreshes it.
    /// --interval, --rate, --count and --duration still override it.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,

    #[command(flatten)]
    pub querier: QuerierArgs,

    /// An outage is at least this many consecutive unanswered probes after a responder's first
    /// answer; each is listed with its start, end and probes lost (outages.csv). With --groups:
    /// this many rounds of every group unanswered (a group never answered is a missing group).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub outage_min: u64,

    #[command(flatten)]
    pub hosts: HostsArgs,

    /// Width of one row of intervals.csv.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_report_interval, allow_hyphen_values = true)]
    pub report_interval: Duration,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Also write probes.csv: one row per probe and responder (needs --out).
    #[arg(long, requires = "out")]
    pub raw: bool,

    #[command(flatten)]
    pub plain: PlainArgs,

    /// The message --plain sends.
    #[arg(long, value_name = "TEXT", default_value = "very important data", requires = "plain")]
    pub message: String,

    #[command(flatten)]
    pub loss: LossArgs,

    #[command(flatten)]
    pub min: MinArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "\
A census, like fping's: a few probes, a short wait, one line per responder with its median
RTT. Exit code 1 when no responder, or fewer than --min-responders / --min-hosts, answered.

Examples:
  mcprobe discover --iface eth0
  mcprobe discover --iface eth0 --min-hosts 12 --json",
    // A census is a burst: 5 probes 20 ms apart and half a second for the acks. The default is
    // a duration, not a count, so that --duration alone is obeyed (a count's default would win).
    mut_arg("duration", |a| a.default_value("100ms")),
    mut_arg("timeout", |a| a.default_value("500ms").visible_alias("wait"))
)]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub net: GroupArgs,

    #[command(flatten)]
    pub key: KeyArgs,

    #[command(flatten)]
    pub send: SendArgs,

    /// A responder counts if it answers any probe of the burst.
    #[command(flatten)]
    pub length: LengthArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub min: MinArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "\
The demo needs no root and no other host, and sends nothing off the machine: its responders
listen on loopback (answering from 127.0.0.2, 127.0.0.3, ...) and the prober sends through lo.

Examples:
  mcprobe demo
  mcprobe demo --responders 20 --duration 10s --out demo/",
    // A demo should be over in a few seconds and still measure hundreds of probes.
    mut_arg("rate", |a| a.default_value("200")),
    mut_arg("duration", |a| a.default_value("3s"))
)]
pub struct DemoArgs {
    /// Responders to start on loopback.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=200))]
    pub responders: u8,

    #[command(flatten)]
    pub pace: PaceArgs,

    #[command(flatten)]
    pub length: LengthArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mcprobe report run1/                        run1/report.html
  mcprobe report h1/ h2/ h3/ --out lan/       lan/report.html and lan/matrix.csv: prober x responder
  mcprobe report mon/ tue/ wed/ --out trend/  one prober at different times: a trend table")]
pub struct ReportArgs {
    /// Report folders written by `probe --out`, `mesh --out` or `demo`.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,

    /// Folder for report.html (and matrix.csv). Default: the folder itself, or with several
    /// folders the current one.
    #[arg(short, long, value_name = "DIR", visible_alias = "to")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    Soak,
}

/// `--pacing`: the engine's `Pacing`, as the command line spells it (config maps it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PacingArg {
    /// Precise with --realtime (SCHED_FIFO), lean without.
    Auto,
    /// Sleep until each probe's time, send on waking.
    Lean,
    /// Wake early, spin to each probe's time.
    Precise,
}

/// `--schedule`: the engine's `Schedule`, as the command line spells it (config maps it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleArg {
    /// Exactly one interval apart.
    Fixed,
    /// Exponentially distributed gaps with the interval as their mean (a Poisson process).
    Poisson,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Finds, per responder, the highest rate at which it loses at most --max-loss over a whole trial:
steps up from --start (doubling), bisects between the last pass and the first failure, then
repeats one trial at the result to confirm it (RFC 2544's throughput test, per receiver as
RFC 3918 does for multicast). A probe that is lost, late or rate-limited counts against the
responder. For the first failing step it says where the probes went: forward (never reached the
responder), return (acks lost), dropped on this host (its socket buffer, or a sender that could
not keep the rate), or refused by the responder's own --rate-limit, so a limit of a host is not
blamed on the network.

Responders limit each prober to 10000 probes/s by default: a result capped by that limit is
marked, and to search above it start them with `respond --rate-limit 0` (or a higher limit).

Examples:
  mcprobe max-rate --iface eth0
  mcprobe max-rate --iface eth0 --trial 10s --max 200000 --max-loss 0.01 --out rate/
  mcprobe max-rate --iface eth0 --min-rate 20000     exit 1 if any responder stays below

Exit codes: 0 success; 1 the weakest responder is below --min-rate, or nobody answered;
2 usage or environment error.")]
pub struct MaxRateArgs {
    #[command(flatten)]
    pub net: GroupArgs,

    #[command(flatten)]
    pub key: KeyArgs,

    #[command(flatten)]
    pub send: SendArgs,

    /// How long each trial sends at one rate.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub trial: Duration,

    #[command(flatten)]
    pub loss: LossArgs,

    /// First rate tried, probes per second.
    #[arg(long, value_name = "RATE", default_value_t = 1000.0, value_parser = parse_rate, allow_hyphen_values = true)]
    pub start: f64,

    /// Highest rate tried, probes per second.
    #[arg(long, visible_alias = "max-rate", value_name = "RATE", default_value_t = 100_000.0, value_parser = parse_rate, allow_hyphen_values = true)]
    pub max: f64,

    /// Stop bisecting when the bracket is narrower than this, in percent of its lower end.
    #[arg(long, value_name = "PCT", default_value_t = 5.0, value_parser = parse_percent, allow_hyphen_values = true)]
    pub resolution: f64,

    /// Exit 1 if the weakest rate is below RATE: in `max-rate` a responder's loss-free probe
    /// rate (probes/s); in `watch` a stream's mean rate (bits/s as 4M or 500k, or packets/s as
    /// 900pps).
    #[arg(long, value_name = "RATE", value_parser = parse_rate, allow_hyphen_values = true)]
    pub min_rate: Option<f64>,

    /// At most this many trials, whatever the responders do.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_trials: u32,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "\
How many groups can a responder join and still get every one of them (RFC 3918 section 7.1, group
capacity, per receiver)? Start the responders with the same list and a ramp, e.g.
  mcprobe respond --iface eth0 --groups 239.9.0.0/23 --ramp 8/2s
(as root, so each can count the canary): each joins 8 groups every 2 s, in the list's order, and
says in its acks how many it has joined. This command sends to every group of the list and to a
canary group nobody joins, in steps of --step, and reports per responder the most groups that
all arrived, and how it failed beyond: new groups dropped (a full table, or a per-port limit), or
flooding (the canary arrived: a Linux bridge whose table is full turns snooping off, for good,
until `ip link set BRIDGE type bridge mcast_snooping 1`), or the responder's own host refusing a
membership (a limit of that host, not of the network).

Examples:
  mcprobe max-groups --iface eth0 --groups 239.9.0.0/23
  mcprobe max-groups --iface eth0 --groups 239.9.0.0/23 --step 2s --min-groups 256
  mcprobe max-groups --iface eth0 --groups 239.9.0.0/23 --json > capacity.json

Exit codes: 0 search done; 1 some responder's count is below --min-groups, or no responder
ramped; 2 usage or environment error.")]
pub struct MaxGroupsArgs {
    #[command(flatten)]
    pub net: GroupArgs,

    #[command(flatten)]
    pub groups: GroupsArgs,

    #[command(flatten)]
    pub key: KeyArgs,

    #[command(flatten)]
    pub canary: CanaryArgs,

    /// How long one step sends: make it the responders' ramp period.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub step: Duration,

    /// Probes of each group per step.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,

    /// At most this many steps, whatever the responders do.
    #[arg(long, value_name = "N", default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub max_steps: u32,

    /// Failing steps in a row before a failure counts (a group whose first probes came late is
    /// not a full table).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub confirm: u32,

    /// Exit 1 if some responder's count that worked is below N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub min_groups: Option<u32>,

    /// Print the result as JSON on stdout instead of the text.
    #[arg(long)]
    pub json: bool,

    /// IP TTL of probes. 1 keeps them on the local segment; raise it to cross multicast routers.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: u32,

    /// No progress display and no informational lines on stderr; errors and threshold misses are
    /// still printed.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "\
Run the same command on every host of the list, at about the same time. Each host answers the
others' probes (as `respond`) and probes them (as `probe --hosts`, multicast and unicast) from
one process, then prints its row of the mesh: per peer, loss by direction, RTT and a verdict.
With --out each host writes an ordinary report folder; collect them and merge the rows into the
N x N matrix with `mcprobe report host1/ host2/ ... --out mesh/`.

Denominators: hosts start at different times, so a peer's loss counts from its first answer on
each path (`lost_after_first`, `loss_after_first_pct` in summary.csv), here and in the merged
matrix. This host keeps answering for --linger after its last probe, so peers that started later
are not charged with its exit. A peer that never answered is a finding (verdict `unreachable` or
`multicast-lost`), not an error.

Examples:
  mcprobe mesh --iface eth0 --hosts 10.0.0.11,10.0.0.12,10.0.0.13 --out mesh-$(hostname)/
  mcprobe mesh --iface eth0 --hosts-file cluster.txt --duration 1m --rate 100

Exit codes: 0 every peer ok; 1 some peer's verdict is not ok; 2 usage or environment error;
3 some peer is multicast-lost (multicast broken where unicast works; takes precedence over 1).",
    // Every host must have started before the first one stops: longer than a probe run.
    mut_arg("duration", |a| a.default_value("30s"))
)]
pub struct MeshArgs {
    #[command(flatten)]
    pub net: GroupArgs,

    #[command(flatten)]
    pub key: KeyArgs,

    /// Every host of the mesh, this one included.
    #[command(flatten)]
    pub hosts: HostsArgs,

    #[command(flatten)]
    pub send: SendArgs,

    #[command(flatten)]
    pub pace: PaceArgs,

    #[command(flatten)]
    pub length: LengthArgs,

    /// How long to keep answering after the last probe, for peers that started later.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub linger: Duration,

    #[command(flatten)]
    pub loss: LossArgs,

    #[command(flatten)]
    pub name: NameArgs,

    #[command(flatten)]
    pub output: OutputArgs,
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

With --groups, each window probes every group in turn (at least once each) and the metrics
count, per responder, the groups it reached in the last window (mcprobe_groups_reached) and the
groups it missed (mcprobe_groups_missed_total), out of mcprobe_groups: aggregated, not a series
per group (--group-series adds those while they fit in --max-series).

Examples:
  mcprobe serve --iface eth0                              one target, metrics on 127.0.0.1:9798
  mcprobe serve --iface eth0 --hosts 10.0.0.11,10.0.0.12 --listen 10.9.0.5:9798
  mcprobe serve --iface eth0 --groups 239.1.0.0/22 --rate 1000 --window 10s
  mcprobe serve --config /etc/mcprobe/serve.toml          several targets (see contrib/)")]
pub struct ServeArgs {
    #[command(flatten)]
    pub net: GroupArgs,

    #[command(flatten)]
    pub groups: GroupsArgs,

    #[command(flatten)]
    pub key: KeyArgs,

    /// The target's name (the `target` label of every series).
    #[arg(long = "target", value_name = "NAME", default_value = "default")]
    pub target: String,

    #[command(flatten)]
    pub send: SendArgs,

    #[command(flatten)]
    pub pace: PaceArgs,

    #[command(flatten)]
    pub hosts: HostsArgs,

    /// Probes are accounted in back-to-back windows of this length; metrics move once per window.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub window: Duration,

    /// An outage is at least this many consecutive unanswered probes after a responder's first
    /// answer; each is listed with its start, end and probes lost (outages.csv). With --groups:
    /// this many rounds of every group unanswered (a group never answered is a missing group).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub outage_min: u64,

    #[command(flatten)]
    pub querier: QuerierArgs,

    /// A fleet watching itself: this host also answers the target's group as `respond` does (same
    /// group, port, interface and key; --name), and exports a per-peer matrix row
    /// (mcprobe_mesh_*: source, peer, path, direction). Peers are learned from their acks;
    /// --hosts/--hosts-file name the expected ones (an expected peer that never answers is
    /// exported as such). Every window probes the group, and by unicast, interleaved, a sample of
    /// the peers (learned and expected): at most 16 a window, in turns, so each gets a window in
    /// every ceil(peers/16); a peer that answers the group but not unicast shows as unicast loss
    /// (path="unicast"). Unless --rate or --interval says otherwise, a mesh probes at 1 probe/s,
    /// lowered as peers appear so that a host answers at most 45 probes/s (its peers' probes: rate
    /// x (peers + unicast peers a window)): 1/s up to 30 hosts, 0.2/s at 200, under 180 packets/s
    /// per host (a window holds at least one probe: past 435 hosts, give a longer --window).
    #[arg(long)]
    pub mesh: bool,

    #[command(flatten)]
    pub name: NameArgs,

    /// With --groups (or `groups` in a `[[target]]`): also export one series per responder and
    /// group, mcprobe_group_reached (1 if it answered the group in the last window, else 0), as
    /// long as a target's responders x groups stay within --max-series; beyond that only the
    /// aggregated series, and mcprobe_group_series_capped is 1. Off: aggregated series only.
    #[arg(long)]
    pub group_series: bool,

    /// Address and port of the HTTP server.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// A responder, or a watched stream (a `[[watch]]` entry's group and source), silent this
    /// long leaves the metrics.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration, allow_hyphen_values = true)]
    pub forget: Duration,

    /// TLS and basic auth for the HTTP side: a Prometheus exporter web config file
    /// (tls_server_config with cert_file and key_file; basic_auth_users with bcrypt hashes), as
    /// node_exporter's --web.config.file takes (also accepted under that name).
    #[arg(long, value_name = "FILE", alias = "web.config.file")]
    pub web_config: Option<PathBuf>,

    /// Most series (responder × path) kept per target, and streams (group, port, source) per
    /// `[[watch]]` entry; more responders are refused and counted, more streams summed as
    /// source "other".
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_SERIES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_series: usize,

    /// Targets from a TOML file (one `[[target]]` table each) instead of the target flags, and
    /// streams to watch (`[[watch]]` tables: name, groups, iface, source, format, ...).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["group", "groups", "port", "iface", "ack_port", "target", "ttl", "size", "interval", "rate", "hosts", "hosts_file", "window", "timeout", "outage_min", "querier_wait", "mesh"])]
    pub config: Option<PathBuf>,

    /// No progress display and no informational lines on stderr; errors and threshold misses are
    /// still printed.
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
