//! The flag groups every command shares (`#[command(flatten)]`): one definition per flag, so a
//! flag has the same name, short form, value, default and help in every command that takes it.
//! A command whose default must differ says so with `mut_arg` on its own struct, where the
//! consistency test (`tests::one_flag_one_meaning`) sees it and an allow-list explains it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::parse::{parse_duration, parse_percent, parse_rate, parse_size};

/// Default group: in 239.255.0.0/16, the IPv4 local scope of administratively scoped multicast
/// (RFC 2365), which routers at the site boundary do not forward.
pub const DEFAULT_GROUP: &str = "239.255.42.42";
/// Default UDP port: a fixed one, so responders and probers meet without configuration.
pub const DEFAULT_PORT: u16 = 24242;

/// Where probes go, or where a responder listens: the group, its port, the interface.
#[derive(Debug, Args, Clone)]
pub struct GroupArgs {
    /// Multicast group: IPv4 (224.0.0.0/4) or IPv6 (ff0X::, ff1X::, ff3X::; needs --iface).
    #[arg(short, long, value_name = "ADDR", default_value = DEFAULT_GROUP)]
    pub group: std::net::IpAddr,

    /// UDP port of the group.
    #[arg(short, long, default_value_t = DEFAULT_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// Interface, by name (eth0) or by one of its addresses. Default: the system's choice, i.e.
    /// the interface of the route to the group (named in the first line of the output); IPv6
    /// groups need it.
    #[arg(short, long, value_name = "IFACE")]
    pub iface: Option<String>,

    /// Socket receive buffer, in bytes (suffixes k, M). The kernel caps it at net.core.rmem_max,
    /// except for root (CAP_NET_ADMIN), which gets the size asked.
    #[arg(long, value_name = "BYTES", default_value = "4M", value_parser = parse_size)]
    pub rcvbuf: usize,
}

/// The most groups one `--groups` list may hold: mcjoin's limit is 2048; past a few thousand the
/// responder's sockets (one per 20 memberships) and the table's rows stop being a LAN check.
pub const MAX_GROUPS: usize = 4096;

/// `--groups`: many groups at once, instead of `--group` (RFC 3918's per-group figures).
#[derive(Debug, Args, Clone)]
pub struct GroupsArgs {
    /// Many groups at once, instead of --group: addresses, ranges (239.1.1.1-239.1.4.250) and
    /// prefixes (239.1.0.0/22, ff15::1:0/118), comma-separated, one family, at most 4096;
    /// optionally with their port after the list (239.1.0.0/22:5000, [ff15::1:0/118]:5000),
    /// else --port. A prober sends to them in turn (probe k to group k mod N), so --rate and
    /// --interval pace all of them together: each group gets rate/N probes a second (--rate 1000
    /// with 1000 groups: one probe a second per group). A responder joins every one of them.
    #[arg(long, value_name = "LIST[:PORT]", conflicts_with = "group", value_parser = parse_group_list)]
    pub groups: Option<GroupList>,
}

/// A `--groups` value: the groups as written (order kept, repeats dropped) and the port written
/// after them, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupList {
    pub groups: Vec<std::net::IpAddr>,
    pub port: Option<u16>,
    /// As written, for messages.
    pub spec: String,
}

/// `LIST` or `LIST:PORT` (IPv6 in brackets with a port): the same spelling in every command.
pub(crate) fn parse_group_list(s: &str) -> Result<GroupList, String> {
    match crate::groups::parse_groups(s, MAX_GROUPS) {
        Ok(groups) => Ok(GroupList { groups, port: None, spec: s.to_string() }),
        Err(e) => {
            let looks_ported = s.contains('[') || (s.contains(':') && !s.contains("::"));
            match crate::groups::parse_groups_port(s, MAX_GROUPS) {
                Ok((groups, port)) => Ok(GroupList { groups, port: Some(port), spec: s.to_string() }),
                Err(pe) if looks_ported => Err(pe),
                Err(_) => Err(e),
            }
        }
    }
}

/// `respond --ramp`: the responder's side of `mcprobe max-groups`.
#[derive(Debug, Args, Clone)]
pub struct RampArgs {
    /// With --groups, for `mcprobe max-groups`: join the groups STEP at a time, every PERIOD,
    /// in the list's order (8/2s: 8 at once, 8 more every 2 s), and tell in every ack how many
    /// are joined, what this host's kernel refused, and how many probes of the --canary group
    /// reached this host's interface (as root: the count needs CAP_NET_RAW).
    #[arg(long, value_name = "STEP/PERIOD", requires = "groups", value_parser = super::parse::parse_ramp)]
    pub ramp: Option<(u32, std::time::Duration)>,

    #[command(flatten)]
    pub canary: CanaryArgs,
}

/// The canary of `max-groups` and `respond --ramp`.
#[derive(Debug, Args, Clone)]
pub struct CanaryArgs {
    /// The group nobody joins, whose probes reach a responder only when the network floods
    /// (`max-groups`, `respond --ramp`; both ends must agree). Default: the address after the
    /// highest of --groups.
    #[arg(long, value_name = "GROUP")]
    pub canary: Option<std::net::IpAddr>,
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

/// How each probe is sent and how long its ack may take.
#[derive(Debug, Args, Clone)]
pub struct SendArgs {
    /// IP TTL of probes. 1 keeps them on the local segment; raise it to cross multicast routers.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=255))]
    pub ttl: u32,

    /// Probe size in bytes (UDP payload). At least 64, the size of an ack, so an ack is never
    /// larger than its probe (80 with --key). The responder's name travels in what is left.
    #[arg(short, long, default_value_t = 128, value_parser = clap::value_parser!(u16).range(64..=65507))]
    pub size: u16,

    /// An ack slower than this is late (counted, but its probe is lost). Also how long a run
    /// that ends waits for the acks of its last probes.
    #[arg(short = 'W', long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub timeout: Duration,

    /// This prober's local UDP port, where the acks arrive. Default: an ephemeral port, as any
    /// UDP client has. Set it when this host has a firewall: acks come from the responders'
    /// --port to this port, and conntrack does not tie them to the multicast probes, so a
    /// stateful firewall drops them unless this port is open (`nft insert rule inet filter
    /// input udp dport PORT accept`). Where --hosts is given (probe, serve, mesh), the unicast
    /// probes take the ports after it, one per host (PORT+1 ... PORT+N): a stateful firewall
    /// passes their acks anyway, a stateless one needs the whole range.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ack_port: Option<u16>,
}

/// How often probes leave.
#[derive(Debug, Args, Clone)]
pub struct PaceArgs {
    /// Time between probes (instead of --rate). Default: 100ms (10 probes/s), unless --rate
    /// shows a default of its own; 1s with `probe --preset soak`.
    #[arg(short = 'I', long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "rate", allow_hyphen_values = true)]
    pub interval: Option<Duration>,

    /// Probes per second (instead of --interval): 1000, 2.5k, 1M.
    #[arg(short, long, value_parser = parse_rate, allow_hyphen_values = true)]
    pub rate: Option<f64>,
}

/// How long a run lasts.
#[derive(Debug, Args, Clone)]
pub struct LengthArgs {
    /// Number of probes to send (instead of --duration).
    #[arg(short, long, conflicts_with = "duration", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// How long the run lasts (without --count; 10s unless shown otherwise, 10m with `probe
    /// --preset soak`). A prober stops sending at this time whatever the rate: a sender that
    /// cannot keep up sends fewer probes, and says so.
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub duration: Option<Duration>,
}

/// The hosts that should answer.
#[derive(Debug, Args, Clone)]
pub struct HostsArgs {
    /// The hosts that should answer (addresses or names, comma-separated). Missing and unexpected
    /// responders are reported, and each host also gets unicast probes, interleaved with the
    /// multicast ones, so that each gets a verdict comparing the two paths.
    #[arg(long, value_name = "HOST,...", value_delimiter = ',')]
    pub hosts: Vec<String>,

    /// Read the hosts from a file: one address or name per line, no port; `#` starts a comment.
    #[arg(long, value_name = "PATH")]
    pub hosts_file: Option<PathBuf>,
}

impl HostsArgs {
    pub(crate) fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.hosts_file.is_none()
    }
}

/// What a measuring command writes, and how much it says.
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Write the run's report folder here: its CSV files, report.json and report.html (the
    /// manual's Reports chapter lists every file). A folder that holds files mcprobe did not
    /// write is refused (see --force); an earlier run's files are replaced only once this run's
    /// are complete.
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Do not write report.html into the --out folder.
    #[arg(long)]
    pub no_html: bool,

    /// Write into an --out folder that holds other files (they are left alone).
    #[arg(long)]
    pub force: bool,

    /// Print the result as JSON on stdout instead of the text (the report.json of an --out
    /// folder, in the commands that write one).
    #[arg(long)]
    pub json: bool,

    /// No progress display and no informational lines on stderr; errors and threshold misses are
    /// still printed.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The loss that counts as a failure.
#[derive(Debug, Args, Clone)]
pub struct LossArgs {
    /// Loss above PCT percent is a failure: `probe` exits 1 when a responder loses more; with
    /// --hosts and in `mesh` it is the verdicts' threshold (default there 1); in `max-rate` a
    /// trial fails above it (default there 0); `watch` exits 1 when a stream loses more of its
    /// datagrams.
    #[arg(long, value_name = "PCT", value_parser = parse_percent, allow_hyphen_values = true)]
    pub max_loss: Option<f64>,
}

/// How many must answer.
#[derive(Debug, Args, Clone)]
pub struct MinArgs {
    /// Exit 1 if fewer than N responders answered. A responder is one answering process: two on
    /// one host count twice (see --min-hosts).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub min_responders: Option<usize>,

    /// Exit 1 if responders answered from fewer than N host addresses.
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub min_hosts: Option<usize>,
}

/// The querier watch.
#[derive(Debug, Args, Clone)]
pub struct QuerierArgs {
    /// Warn when no IGMP/MLD membership query was heard for this long: snooping switches then
    /// drop the group. Listening needs CAP_NET_RAW (without it, a one-line notice). Default: the
    /// querier's interval + 10s (135s before any query is heard).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub querier_wait: Option<Duration>,
}

/// A name to answer with.
#[derive(Debug, Args, Clone)]
pub struct NameArgs {
    /// Name sent in acks (at most 64 bytes, printable). Default: the host name.
    #[arg(short, long)]
    pub name: Option<String>,
}

/// The course lab's protocol.
#[derive(Debug, Args, Clone)]
pub struct PlainArgs {
    /// Speak the course lab's plain protocol, as its two Python scripts do: `respond` answers
    /// `ack` to any datagram of 3 bytes or more; `probe` sends a plain message and counts every
    /// host that answers anything, by source address. Replies carry no sequence number, so each
    /// is taken as the answer to the newest message: keep the interval longer than the RTT. Loss
    /// cannot be split by direction.
    #[arg(long, conflicts_with_all = ["key", "key_file"])]
    pub plain: bool,
}
