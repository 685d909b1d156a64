//! A keyed probe is good only where it was sent (issue 24): captured on one group and sent,
//! from a forged address, to another group, another port, or the source-specific channel of
//! another source, it reaches responders that never saw the original, so only its tag can tell.
//! The real binary on loopback: a real keyed prober, responders on each of those, and a
//! capturing socket joined to the group as any host of the LAN is.

use crate::common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use common::*;
use mcprobe::auth::{Binding, Key};
use mcprobe::wire::{self, Message, Probe};

const OTHER_GROUP: &str = "239.255.42.43";
const SECRET: &str = "replay across groups test secret";

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn keyed_responder(group: &str, port: u16, name: &str, source: Option<&str>) -> Responder {
    let mut c = bin();
    c.args(["respond", "--iface", "127.0.0.1", "--group", group, "--port", &port.to_string(), "--name", name]);
    c.args(["--key", SECRET]);
    if let Some(s) = source {
        c.args(["--source", s]);
    }
    Responder::spawn(c)
}

/// A socket joined to the group on loopback: it sees every probe, as every host of a LAN does.
fn capture(port: u16) -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&SocketAddrV4::new(GROUP.parse().unwrap(), port).into()).unwrap();
    s.join_multicast_v4(&GROUP.parse().unwrap(), &Ipv4Addr::LOCALHOST).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.into()
}

/// A socket that sends multicast through loopback from `src`, a forged address (any of 127/8).
fn sender_from(src: &str) -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    s.set_multicast_ttl_v4(1).unwrap();
    s.bind(&SocketAddrV4::new(src.parse().unwrap(), 0).into()).unwrap();
    s.into()
}

/// Sends `datagram` `times` times to `to`; returns the acks and the notices that came back
/// within `wait` of the last one (a failure bound: a responder answers within microseconds).
fn send(sock: &UdpSocket, to: SocketAddr, datagram: &[u8], times: usize) -> (usize, usize) {
    for _ in 0..times {
        sock.send_to(datagram, to).unwrap();
    }
    sock.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    let mut buf = [0u8; 2048];
    let (mut acks, mut notices) = (0, 0);
    while let Ok(n) = sock.recv(&mut buf) {
        match wire::decode(&buf[..n]) {
            Ok(Message::Ack(_)) => acks += 1,
            Ok(Message::Notice(_)) => notices += 1,
            other => panic!("an unexpected reply: {other:?}"),
        }
    }
    (acks, notices)
}

/// A fresh probe of a new session, keyed as a real prober at `sock`'s address would key it for
/// `to`: the control that shows each responder does answer from there.
fn fresh_probe(sock: &UdpSocket, to: SocketAddr, session: u64) -> Vec<u8> {
    let key = Key::from_secret(SECRET.as_bytes()).unwrap();
    let mut p = Probe { session, seq: 0, tx_ns: now_ns(), asks_ext: false }.encode(128 - wire::TAG_LEN);
    key.seal_probe(&mut p, &Binding { dst: to, src: sock.local_addr().unwrap().ip() });
    p
}

/// The number before the first `label` in a responder's closing line (" ack" finds "1 ack sent" and
/// "5 acks sent").
fn count_before(closing: &str, label: &str) -> u64 {
    let before = closing.split(label).next().unwrap();
    before.split_whitespace().last().unwrap().parse().unwrap_or_else(|_| panic!("no count before {label:?}: {closing}"))
}

#[test]
fn a_keyed_probe_replayed_to_another_group_port_or_source_earns_no_ack() {
    let (port, second_port) = (free_port(), free_port());
    // Where the original goes: any source (ASM), and the channel of the prober's own address.
    let asm = keyed_responder(GROUP, port, "asm", None);
    let ssm = keyed_responder(GROUP, port, "ssm-prober", Some("127.0.0.1"));
    // Where the copies go: another group, another port, another source's channel.
    let other_group = keyed_responder(OTHER_GROUP, port, "other-group", None);
    let other_port = keyed_responder(GROUP, second_port, "other-port", None);
    let other_source = keyed_responder(GROUP, port, "ssm-other", Some("127.0.0.77"));
    let listener = capture(port);

    // The original: a real keyed prober, 5 probes, each answered by the two responders it is for.
    let out = run(probe_cmd(port, &["--count", "5", "--rate", "50", "--timeout", "300ms", "--json", "--key", SECRET]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut answered: Vec<(String, u64)> = (v["responders"].as_array().unwrap().iter())
        .map(|r| (r["responder"].as_str().unwrap().to_string(), r["received"].as_u64().unwrap()))
        .collect();
    answered.sort();
    assert_eq!(answered, [("asm".to_string(), 5), ("ssm-prober".to_string(), 5)], "{v}");
    let mut buf = [0u8; 2048];
    let (n, _) = listener.recv_from(&mut buf).unwrap();
    let captured = buf[..n].to_vec();
    assert!(matches!(wire::decode(&captured), Ok(Message::Probe(_))));

    // The copies, sent at once (well within --max-clock-skew: fresh, never seen by these
    // responders, so before the binding each one earned an ack per responder), 20 of each.
    let victim = sender_from("127.0.0.66");
    let forged = sender_from("127.0.0.77");
    let to_group = |g: &str, p: u16| SocketAddr::new(g.parse().unwrap(), p);
    let cases = [
        ("another group", &victim, to_group(OTHER_GROUP, port), 1),
        ("another port", &victim, to_group(GROUP, second_port), 1),
        // Reaches the ASM responder and the SSM one of 127.0.0.77's channel.
        ("another source (SSM)", &forged, to_group(GROUP, port), 2),
    ];
    for (i, (what, sock, to, reached)) in cases.iter().enumerate() {
        let (acks, notices) = send(sock, *to, &captured, 20);
        println!("{what}: 20 copies to {to} from {}: {acks} acks, {notices} notices", sock.local_addr().unwrap());
        assert_eq!(acks, 0, "{what}");
        // What the copies drew instead: a notice about the key, at most one a second per source
        // per responder reached, each no larger than the copy.
        assert!(notices <= *reached, "{what}: {notices} notices");
        // Control: a probe keyed for exactly this destination and source is answered there.
        let (acks, _) = send(sock, *to, &fresh_probe(sock, *to, 0x5eed + i as u64), 1);
        assert_eq!(acks, *reached, "{what}: the control");
    }

    // Each responder counted the copies as unauthenticated, none as stale: refused for where
    // they were sent, not for when.
    for (r, acks, copies) in [(other_group, 1, 20), (other_port, 1, 20), (other_source, 1, 20), (asm, 6, 20)] {
        let closing = r.stop();
        println!("{closing}");
        assert_eq!(count_before(&closing, " ack"), acks, "{closing}");
        assert_eq!(count_before(&closing, " unauthenticated"), copies, "{closing}");
        assert_eq!(count_before(&closing, " stale (clock skew)"), 0, "{closing}");
    }
    let closing = ssm.stop();
    assert_eq!(count_before(&closing, " ack"), 5, "{closing}");
}
