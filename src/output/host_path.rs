//! The host-path findings in words: renders [`AcksDroppedHere`] and [`ProbesDroppedAtHost`],
//! decides nothing.

use serde::Serialize;

use crate::findings::host_path::{HostPath, ProbesDroppedAtHost};
use crate::findings::AcksDroppedHere;
use crate::run::AckWatch;

/// "a (3), b (2) and c (1)".
fn sources(d: &AcksDroppedHere) -> String {
    let list: Vec<String> = d.from.iter().map(|(a, n)| format!("{a} ({n})")).collect();
    match &list[..] {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn port_expr(first: u16, last: u16) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

/// The rules that open the ack ports, for nftables and iptables.
pub(crate) fn open_rules(first: u16, last: u16) -> (String, String) {
    let (nft, ipt) =
        (port_expr(first, last), if first == last { first.to_string() } else { format!("{first}:{last}") });
    (
        format!("nft insert rule inet filter input udp dport {nft} accept"),
        format!("iptables -I INPUT -p udp --dport {ipt} -j ACCEPT"),
    )
}

/// The line under the table.
pub(crate) fn acks_line(d: &AcksDroppedHere) -> String {
    let port = d.ports.first().map_or(String::new(), |p| format!(" {p}"));
    let (first, last) = d.ports_to_open();
    let (nft, ipt) = open_rules(first, last);
    let fix = if d.chosen {
        format!("open this prober's --ack-port: `{nft}` (or `{ipt}`)")
    } else {
        let hosts = if last > first {
            format!(" (with --hosts it also takes the ports after it, up to {last})")
        } else {
            String::new()
        };
        format!("probe with --ack-port {first}{hosts} and open it: `{nft}` (or `{ipt}`)")
    };
    let buffer = if d.socket_buffer > 0 {
        format!("; {} more were dropped by the socket's full buffer (raise --rcvbuf)", d.socket_buffer)
    } else {
        String::new()
    };
    format!(
        "this host's firewall drops the acks: {} acks from {} reached its interface but never mcprobe's socket{buffer}. They come from the responders' port {} to this prober's port{port}, and a stateful firewall does not tie them to probes sent to a group. Fix: {fix}",
        d.dropped,
        sources(d),
        d.group_port,
    )
}

/// The line under the table for a responder's host that dropped probes before its socket.
pub(crate) fn probes_line(d: &ProbesDroppedAtHost) -> String {
    format!(
        "{} ({}): at least {} probes reached its interface but never its responder's socket, as its host counted: that host drops them (its firewall, rp_filter, or a join on another interface; its responder's log names which), not the network",
        d.name, d.addr, d.probes
    )
}

#[derive(Serialize)]
struct JsonSource {
    address: String,
    at_interface: u64,
    at_socket: u64,
}

#[derive(Serialize)]
struct JsonAcks {
    watched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_watched_because: Option<String>,
    by_source: Vec<JsonSource>,
    dropped_here: u64,
    socket_buffer: u64,
    tap_drops: u64,
}

#[derive(Serialize)]
struct JsonHostDrops {
    responder: String,
    address: String,
    probes: u64,
}

/// The `host_path` object of `--json`.
#[derive(Serialize)]
pub(crate) struct JsonHostPath {
    #[serde(skip_serializing_if = "Option::is_none")]
    acks: Option<JsonAcks>,
    probes_dropped_at_hosts: Vec<JsonHostDrops>,
}

impl From<&HostPath> for JsonHostPath {
    fn from(h: &HostPath) -> Self {
        let dropped = h.acks_dropped.as_ref();
        let acks = h.acks.as_ref().map(|w| match w {
            AckWatch::NotWatched(why) => JsonAcks {
                watched: false,
                not_watched_because: Some(why.clone()),
                by_source: Vec::new(),
                dropped_here: 0,
                socket_buffer: 0,
                tap_drops: 0,
            },
            AckWatch::Watched(s) => JsonAcks {
                watched: true,
                not_watched_because: None,
                by_source: (s.by_source.iter())
                    .map(|&(a, i, k)| JsonSource { address: a.to_string(), at_interface: i, at_socket: k })
                    .collect(),
                dropped_here: dropped.map_or(0, |d| d.dropped),
                socket_buffer: dropped.map_or(0, |d| d.socket_buffer),
                tap_drops: s.tap_drops,
            },
        });
        let probes_dropped_at_hosts = (h.probes_dropped.iter())
            .map(|d| JsonHostDrops { responder: d.name.clone(), address: d.addr.to_string(), probes: d.probes })
            .collect();
        JsonHostPath { acks, probes_dropped_at_hosts }
    }
}
