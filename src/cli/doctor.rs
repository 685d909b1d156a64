//! `mcprobe doctor`'s flags (clap only).

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;

use super::{parse_duration, DEFAULT_GROUP, DEFAULT_PORT};

/// Which side of mcprobe this host plays, for the checks that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// It runs `probe`, `serve`, `max-rate` or `discover`: it sends probes and gets acks.
    Prober,
    /// It runs `respond`: it gets probes and sends acks.
    Responder,
    /// Both, as `mesh` does.
    Both,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Checks this host for what silently breaks multicast, and prints each finding with the command
that fixes it: the interface (down, no carrier, no MULTICAST flag, no address), the route for
the group (none, or by another interface), the reverse-path filter against the peers' addresses
(asked of the kernel with `ip route get ... from PEER iif IFACE`, nothing sent), firewall rules
that drop the probes, the acks or IGMP/MLD, net.ipv4.igmp_max_memberships, the port already
bound (and what IP_MULTICAST_ALL then delivers to that socket), the membership querier on the
link, and with --keyed the clock's synchronisation.

What the firewall check can and cannot prove: it reads the rules (`nft -j list ruleset`, and
`iptables-legacy-save` when that backend has rules) and runs the packets mcprobe sends and gets
through the chains of their hooks, in the kernel's order. A drop it reports is a rule or a
policy that exists. It cannot see filters outside netfilter (tc, XDP, eBPF), and says \"cannot
tell\" for rules that depend on what it does not model (rate limits, marks, fib lookups, sets
filled at run time). It sends nothing to test them: traffic from this host to its own address
goes through `lo`, not IFACE, so a self-test would not meet the same rules. `probe` and
`respond` count what the firewall really drops (their packet taps).

The querier check listens for IGMP/MLD queries (CAP_NET_RAW) for --querier-listen, after joining
and leaving --group on IFACE once: a querier answers a leave with a query within about a second,
so a short wait suffices where one exists.

Examples:
  mcprobe doctor --iface eth0                         both roles, the default group and port
  mcprobe doctor --iface eth0 --role responder --peer 10.0.0.5
  mcprobe doctor --iface eth0 --role prober --ack-port 24243 --json

Exit codes: 0 nothing found; 1 findings; 2 usage or environment error.")]
pub struct DoctorArgs {
    /// The interface to check, by name (eth0) or by one of its addresses.
    #[arg(short, long, value_name = "IFACE")]
    pub iface: String,

    /// Multicast group: IPv4 (224.0.0.0/4) or IPv6 (ff0X::, ff1X::, ff3X::; needs --iface).
    #[arg(short, long, value_name = "ADDR", default_value = DEFAULT_GROUP)]
    pub group: IpAddr,

    /// UDP port of the group.
    #[arg(short, long, default_value_t = DEFAULT_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// The side this host plays.
    #[arg(long, value_enum, default_value_t = RoleArg::Both)]
    pub role: RoleArg,

    /// This prober's local UDP port, where the acks arrive. Default: an ephemeral port, as any
    /// UDP client has. Set it when this host has a firewall: acks come from the responders'
    /// --port to this port, and conntrack does not tie them to the multicast probes, so a
    /// stateful firewall drops them unless this port is open (`nft insert rule inet filter
    /// input udp dport PORT accept`). Where --hosts is given (probe, serve, mesh), the unicast
    /// probes take the ports after it, one per host (PORT+1 ... PORT+N): a stateful firewall
    /// passes their acks anyway, a stateless one needs the whole range.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ack_port: Option<u16>,

    /// Address of a host on the other side (the prober, for a responder; a responder, for a
    /// prober), for the reverse-path and firewall checks; repeatable. Default: an address of
    /// the interface's own subnet.
    #[arg(long, value_name = "ADDR")]
    pub peer: Vec<IpAddr>,

    /// How long to listen for a membership querier (after a leave and a re-join of --group,
    /// which a querier answers within about a second).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub querier_listen: Duration,

    /// The hosts use --key: check that this host's clock is synchronised (keyed probes outside
    /// --max-clock-skew are refused).
    #[arg(long)]
    pub keyed: bool,

    /// Print the result as JSON on stdout instead of the text (the report.json of an --out
    /// folder, in the commands that write one).
    #[arg(long)]
    pub json: bool,
}
