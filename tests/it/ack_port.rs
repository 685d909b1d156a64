//! `--ack-port` on loopback: the acks come to the chosen port (and `--hosts`' unicast probes
//! leave from the ports after it), every probing command takes it, and a taken port is a
//! usage error that names the flag and the port.

use std::net::UdpSocket;

use crate::common::*;

#[test]
fn the_acks_come_to_the_chosen_port_and_the_hosts_take_the_next_ones() {
    let port = free_port();
    let ack = free_port();
    let mut r = Responder::start(port, "lo-a");
    // The unicast probes to 127.0.0.2 come to this socket (more specific than the responder's
    // wildcard one): the port they leave from is the prober's for that host.
    let host = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    host.set_reuse_address(true).unwrap();
    host.bind(&std::net::SocketAddr::from(([127, 0, 0, 2], port)).into()).unwrap();
    let host: UdpSocket = host.into();
    host.set_read_timeout(Some(PATIENCE)).unwrap();
    let out = run(probe_cmd(
        port,
        &["--count", "5", "--interval", "20ms", "--ack-port", &ack.to_string(), "--hosts", "127.0.0.2"],
    ));
    // The host never answers (this socket is no responder): verdict not ok, exit 1.
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let multicast = r.wait_for(", multicast");
    let mut buf = [0u8; 2048];
    let (_, from) = host.recv_from(&mut buf).expect("a unicast probe");
    assert_eq!((prober_port(&multicast), from.port()), (ack, ack + 1), "{multicast}");
}

#[test]
fn a_taken_ack_port_is_named_with_its_flag() {
    let taken = UdpSocket::bind("0.0.0.0:0").unwrap();
    let p = taken.local_addr().unwrap().port().to_string();
    let port = free_port().to_string();
    fails_with(
        &["probe", "--iface", "127.0.0.1", "--port", &port, "--count", "1", "--ack-port", &p],
        &[&format!("--ack-port {p} is in use")],
    );
    fails_with(&["discover", "--iface", "127.0.0.1", "--port", &port, "--ack-port", &p], &[&format!("--ack-port {p}")]);
    fails_with(
        &["max-rate", "--iface", "127.0.0.1", "--port", &port, "--trial", "1s", "--ack-port", &p],
        &[&format!("--ack-port {p}")],
    );
    fails_with(
        &[
            "mesh",
            "--iface",
            "127.0.0.1",
            "--port",
            &port,
            "--hosts",
            "127.0.0.1,127.0.0.2",
            "--duration",
            "1s",
            "--ack-port",
            &p,
        ],
        &[&format!("--ack-port {p}")],
    );
    // The group's own port, where responders listen.
    fails_with(
        &["probe", "--iface", "127.0.0.1", "--port", &port, "--ack-port", &port],
        &[&format!("--ack-port {port}: the same as --port")],
    );
    fails_with(
        &["serve", "--iface", "127.0.0.1", "--port", &port, "--ack-port", &port, "--listen", "127.0.0.1:0"],
        &[&format!("--ack-port {port}: the same as --port")],
    );
}
