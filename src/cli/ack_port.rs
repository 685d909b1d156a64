//! `--ack-port`: the prober's own UDP port for acks, shared by every command that probes
//! (`probe`, `discover`, `mesh`, `max-rate`, `serve`). Clap only.

use clap::Args;

#[derive(Debug, Args, Clone, Copy, Default)]
pub struct AckPortArgs {
    /// This prober's local UDP port, where the acks arrive. Default: an ephemeral port, as any
    /// UDP client has. Set it when this host has a firewall: acks come from the responders'
    /// --port to this port, and conntrack does not tie them to the multicast probes, so a
    /// stateful firewall drops them unless this port is open (`nft insert rule inet filter
    /// input udp dport PORT accept`). With --hosts, the unicast probes take the ports after it, one
    /// per host (PORT+1 ... PORT+N): a stateful firewall passes their acks anyway, a stateless
    /// one needs the whole range.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ack_port: Option<u16>,
}
