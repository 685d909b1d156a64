//! A responder's lines about new probers are throttled, and what was not shown is told
//! (issue 24 item 9): a flood of forged sessions neither fills its log nor goes unsaid, even
//! when no later line comes to say it.

use crate::common;

use std::net::SocketAddr;

use common::*;
use mcprobe::wire::Probe;

#[test]
fn a_flood_of_new_probers_is_throttled_and_the_rest_counted_at_the_close() {
    let port = free_port();
    let mut r = Responder::start(port, "r1");
    let sock = loopback_multicast_sender();
    let to: SocketAddr = format!("{GROUP}:{port}").parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    // 50 probers (each its own high 32 bits of session id), one probe each.
    for i in 0..50u64 {
        let p = Probe { session: (i + 1) << 32, seq: 0, tx_ns: now, asks_ext: false }.encode(100);
        sock.send_to(&p, to).unwrap();
    }
    // The responder answers them (acks come back to this socket): then they were all seen.
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 256];
    for _ in 0..50 {
        sock.recv(&mut buf).expect("an ack for each probe");
    }
    let closing = {
        r.signal(nix::sys::signal::Signal::SIGINT);
        r.wait_for("stopped:")
    };
    let shown = r.seen.iter().filter(|l| l.starts_with("session ")).count();
    assert_eq!(shown, 10, "{:#?}", r.seen);
    assert!(closing.contains("; 40 sessions of new probers not shown (at most 10 lines every 10 s)"), "{closing}");
}
