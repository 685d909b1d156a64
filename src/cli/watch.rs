//! `mcprobe watch`'s flags (clap only).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{parse_duration, parse_size};
use crate::stream::verdict::MinRate;
use crate::stream::SeqField;

/// At most this many groups in one watch (one socket each).
pub const MAX_GROUPS: usize = 4096;

/// Groups (one, a range, a prefix or a list) at one port, as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupsAt {
    pub groups: Vec<IpAddr>,
    pub port: u16,
}

fn parse_groups_at(s: &str) -> Result<GroupsAt, String> {
    crate::groups::parse_groups_port(s, MAX_GROUPS).map(|(groups, port)| GroupsAt { groups, port })
}

fn parse_seq(s: &str) -> Result<SeqField, String> {
    SeqField::parse(s)
}

fn parse_min_rate(s: &str) -> Result<MinRate, String> {
    MinRate::parse(s)
}

fn parse_clock(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(hz) if (1000..=10_000_000).contains(&hz) => Ok(hz),
        _ => Err(format!("'{s}' is not an RTP clock rate between 1000 and 10000000 Hz (90000 for video)")),
    }
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// From each stream's first datagram: RTP (with MPEG-TS inside or not), MPEG-TS, else raw.
    Auto,
    /// RTP (RFC 3550); MPEG-TS inside it is analysed too.
    Rtp,
    /// MPEG-TS, over UDP or over RTP.
    Ts,
    /// No numbering: rate, gaps in time and inter-arrival jitter only.
    Raw,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Durations take a unit (500us, 10ms, 2s, 10m); a bare number means seconds.

Examples:
  mcprobe watch --iface eth0 239.1.1.1:5000                 until Ctrl-C, a live table
  mcprobe watch --iface eth0 239.1.1.1:5000 [ff15::1]:5004 --duration 1m --out watch/
  mcprobe watch --iface eth0 --groups 239.1.0.0/24:5000 --duration 30s --json
  mcprobe watch --iface eth0 232.1.1.1:5000 --source 10.0.0.9    source-specific (SSM)
  # a market-data feed whose u64 little-endian sequence number sits at byte 8:
  mcprobe watch --iface eth0 239.9.9.9:30001 --seq u64le@8 --max-gap 50ms
  # IPTV: exit 1 if a channel loses more than 0.01 % or drops below 3 Mbit/s:
  mcprobe watch --iface eth0 --groups 239.1.1.1-239.1.1.40:1234 -d 5m --max-loss 0.01 --min-rate 3M
  # a capture from a customer's site (tcpdump -w, pcap or pcapng), same figures:
  mcprobe watch --pcap site.pcapng --out site/

Table columns: PKTS datagrams; MBIT/S mean UDP payload rate; PEAK1MS the most bits in any 1 ms,
per second (microbursts); LOST datagrams lost by the stream's numbering (RTP, --seq) or inferred
from MPEG-TS continuity counters; DUP duplicates; REOR arrived after a higher-numbered one;
MAXGAP longest time between two datagrams; JIT RFC 3550 jitter (RTP) or the inter-arrival
jitter; CC MPEG-TS continuity errors; DF RFC 4445 delay factor (worst second); MLR TS packets
lost per second (worst second); SILENT time since the last datagram when silent longer than
--max-gap (default 200ms).

Exit codes: 0 every stream met the thresholds; 1 one missed --max-loss, --min-rate or --max-gap
(a watched group that received nothing misses --min-rate and --max-gap); 2 usage or environment
error.")]
pub struct WatchArgs {
    /// Streams: GROUP:PORT, IPv6 in brackets ([ff15::1]:5000); ranges (239.1.1.1-239.1.1.9:5000),
    /// prefixes (239.1.0.0/22:5000) and comma-separated lists too. With --pcap: optional (default:
    /// every multicast datagram of the capture).
    #[arg(value_name = "GROUP:PORT", value_parser = parse_groups_at)]
    pub streams: Vec<GroupsAt>,

    /// More streams, as a range, prefix or list of groups with their port (watch has no
    /// default port): 239.1.1.1-239.1.4.250:5000, 239.1.0.0/22:5000, [ff15::1:0/118]:5000.
    /// Repeatable.
    #[arg(long, value_name = "LIST[:PORT]", value_parser = super::flags::parse_group_list)]
    pub groups: Vec<super::flags::GroupList>,

    /// Interface, by name (eth0) or by one of its addresses. Default: the system's choice, i.e.
    /// the interface of the route to the group (named in the first line of the output); IPv6
    /// groups need it.
    #[arg(short, long, value_name = "IFACE", conflicts_with = "pcap")]
    pub iface: Option<String>,

    /// Join source-specifically (SSM, IGMPv3/MLDv2): accept the group's traffic only from this
    /// sender (for `respond`, usually the prober's address; with `watch --pcap`, only this
    /// sender's datagrams are read). Usually with an SSM group (232.0.0.0/8, ff3X::).
    #[arg(long, value_name = "ADDR")]
    pub source: Option<IpAddr>,

    /// Read a capture (pcap or pcapng, e.g. from tcpdump -w) instead of joining.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,

    /// What the datagrams carry.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,

    /// The feed's own sequence number: its type and byte offset in the UDP payload (u8, u16be,
    /// u16le, u32be, u32le, u64be, u64le), e.g. u32be@0 or u64le@8.
    #[arg(long, value_name = "TYPE@OFFSET", value_parser = parse_seq, conflicts_with = "format")]
    pub seq: Option<SeqField>,

    /// RTP timestamp clock (Hz) for dynamic payload types (96-127), whose clock the SDP gives.
    /// Default 90000 (video). Static types use their own (RFC 3551).
    #[arg(long, value_name = "HZ", value_parser = parse_clock)]
    pub rtp_clock: Option<u32>,

    /// The MPEG-TS media rate (bits/s, e.g. 3.75M) for the MDI delay factor. Default: each
    /// second's measured mean rate, used for the next second.
    #[arg(long, value_name = "RATE", value_parser = parse_min_rate)]
    pub ts_rate: Option<MinRate>,

    /// How long to watch (default: until Ctrl-C). Not with --pcap, which is read whole.
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "pcap", allow_hyphen_values = true)]
    pub duration: Option<Duration>,

    /// Socket receive buffer, in bytes (suffixes k, M). The kernel caps it at net.core.rmem_max,
    /// except for root (CAP_NET_ADMIN), which gets the size asked.
    #[arg(long, value_name = "BYTES", default_value = "4M", value_parser = parse_size)]
    pub rcvbuf: usize,

    #[command(flatten)]
    pub output: super::OutputArgs,

    #[command(flatten)]
    pub loss: super::LossArgs,

    /// Exit 1 if the weakest rate is below RATE: in `max-rate` a responder's loss-free probe
    /// rate (probes/s); in `watch` a stream's mean rate (bits/s as 4M or 500k, or packets/s as
    /// 900pps).
    #[arg(long, value_name = "RATE", value_parser = parse_min_rate)]
    pub min_rate: Option<MinRate>,

    /// Exit 1 if a stream went silent longer than this (between datagrams, or at the end). Also
    /// the gap counted in the figures and the silence after which a stream counts as stopped
    /// (default 200ms).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_gap: Option<Duration>,
}
