//! The prober's sockets: one for the multicast probes and one per `--hosts` host for its unicast
//! probes, read together by one receiver.
//!
//! Why one socket per host: while the neighbour entry of a host that is down is unresolved, the
//! kernel queues the probes to it and charges them to the sending socket. On a shared blocking
//! socket that stalled every other probe (3000 probes at 1000/s took 34.8 s with one dead host).
//! A host's own non-blocking socket fills up alone: its probes are refused (counted as not sent)
//! and nobody else waits. Its error queue also tells that host's ICMP errors apart.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsFd;

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, MsgFlags};

use super::icmp::{self, IcmpError};
use std::time::Duration;

use super::{enable_rx_metadata, set_rcvbuf, udp_socket, wait_ms, ReadTimeout, Received, UNICAST_TTL};

/// A host's unicast socket: its family, `UNICAST_TTL`, ICMP errors queued, never blocking; on
/// `port` (from `--ack-port`, named by `ack_port` in errors) or an ephemeral one. Bound to the
/// source address the route to the host gives (a keyed probe's tag binds it: see
/// `crate::auth`); to the wildcard when there is no route, whose probes fail anyway.
pub(crate) fn unicast_socket(
    host: IpAddr,
    rcvbuf: usize,
    port: Option<u16>,
    ack_port: Option<u16>,
) -> Result<UdpSocket> {
    let sock = udp_socket(host.is_ipv6())?;
    let routed = source_toward(host);
    if host.is_ipv6() {
        sock.set_unicast_hops_v6(UNICAST_TTL).context("cannot set IPV6_UNICAST_HOPS")?;
        socket::setsockopt(&sock, sockopt::Ipv6RecvErr, &true).context("cannot enable IPV6_RECVERR")?;
        let from = match routed {
            Some(SocketAddr::V6(a)) => SocketAddrV6::new(*a.ip(), port.unwrap_or(0), 0, a.scope_id()),
            _ => SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port.unwrap_or(0), 0, 0),
        };
        sock.bind(&from.into())
    } else {
        sock.set_ttl_v4(UNICAST_TTL).context("cannot set IP_TTL")?;
        socket::setsockopt(&sock, sockopt::Ipv4RecvErr, &true).context("cannot enable IP_RECVERR")?;
        let from = match routed {
            Some(SocketAddr::V4(a)) => *a.ip(),
            _ => Ipv4Addr::UNSPECIFIED,
        };
        sock.bind(&SocketAddrV4::new(from, port.unwrap_or(0)).into())
    }
    .map_err(|e| super::ack_port_error(e, ack_port, port.unwrap_or(0), &format!("the unicast probes to {host}")))?;
    set_rcvbuf(&sock, rcvbuf)?;
    enable_rx_metadata(&sock)?;
    sock.set_nonblocking(true).context("cannot make a unicast socket non-blocking")?;
    Ok(sock.into())
}

/// The source address (and IPv6 scope) of the route to `host`, looked up by connecting a
/// throwaway UDP socket (which sends nothing); `None` without a route.
fn source_toward(host: IpAddr) -> Option<SocketAddr> {
    let sock = udp_socket(host.is_ipv6()).ok()?;
    sock.connect(&SocketAddr::new(host, 9).into()).ok()?;
    sock.local_addr().ok()?.as_socket()
}

/// What the receiver gets next.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    /// A datagram on socket `sock` (0 multicast, 1 + i host i); its bytes are in the caller's
    /// buffer.
    Datagram { sock: usize, rx: Received },
    /// An ICMP error about the unicast probes to host `host` (its index in `--hosts`).
    Icmp { host: usize, error: IcmpError },
    /// Nothing arrived within the wait asked for: every socket is drained.
    Idle,
}

/// The multicast socket (index 0) and the hosts' sockets (index 1 + host), read fairly: one
/// datagram from each readable socket in turn.
pub(crate) struct ProbeSockets {
    socks: Vec<UdpSocket>,
    /// The multicast socket read alone, after [`ProbeSockets::read_in_batches`]: up to
    /// [`super::BATCH`] datagrams per system call, handed out one at a time (`batched.0` the
    /// next, `batched.1` how many the last call read).
    batch: Option<Box<super::RecvBatch>>,
    batched: (usize, usize),
    /// Sockets poll found readable (index, error queue pending), not yet drained.
    ready: VecDeque<(usize, bool)>,
    /// The multicast socket's read timeout, when it is read alone.
    timeout: ReadTimeout,
}

impl ProbeSockets {
    pub(crate) fn new(multicast: UdpSocket, unicast: Vec<UdpSocket>) -> Self {
        let socks = std::iter::once(multicast).chain(unicast).collect();
        ProbeSockets { socks, batch: None, batched: (0, 0), ready: VecDeque::new(), timeout: ReadTimeout::default() }
    }

    /// Reads the multicast socket, when it is read alone, up to [`super::BATCH`] datagrams per
    /// system call, each cut to `slot` bytes: at 100 000 acks/s and more, one call per ack was
    /// what the receiver could not keep up with. (Slots are kept small: a `serve` with many
    /// targets holds a prober's sockets for each.)
    pub(crate) fn read_in_batches(&mut self, slot: usize) {
        self.batch = Some(Box::new(super::RecvBatch::new(slot)));
    }

    /// About how many small datagrams the socket with the smallest receive buffer can queue: the
    /// buffer the kernel granted (SO_RCVBUF, which counts each datagram's whole allocation) over
    /// ~1 KiB a datagram.
    pub(crate) fn room(&self) -> usize {
        let granted = |s: &UdpSocket| socket2::SockRef::from(s).recv_buffer_size().unwrap_or(0);
        self.socks.iter().map(granted).min().unwrap_or(0) / 1024
    }

    /// The next datagram or ICMP error, or `Idle` once `wait` (the caller's next deadline) ran
    /// out in silence.
    pub(crate) fn next(&mut self, buf: &mut [u8], cmsg: &mut [u8], wait: Duration) -> io::Result<Event> {
        // Without --hosts, one blocking read with the socket's read timeout: one system call per
        // ack (per batch of queued acks after `read_in_batches`) instead of poll + read + the
        // read that finds the socket drained, which at tens of thousands of acks a second costs
        // the sender CPU on a small machine. The timeout is set only when the deadline moved
        // (see `ReadTimeout`).
        if let ([sock], Some(batch)) = (&self.socks[..], self.batch.as_mut()) {
            if self.batched.0 == self.batched.1 {
                // A look that must not wait (the receiver drains what queued during a nap): a
                // non-blocking read, since the shortest read timeout still waits a timer tick.
                let flags = if wait.is_zero() {
                    nix::libc::MSG_DONTWAIT
                } else {
                    self.timeout.arm(sock, wait)?;
                    0
                };
                self.batched = (0, batch.recv_flags(sock, flags)?);
                if self.batched.1 == 0 {
                    return Ok(Event::Idle);
                }
            }
            let (bytes, rx) = batch.get(self.batched.0);
            self.batched.0 += 1;
            let n = bytes.len().min(buf.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            return Ok(Event::Datagram { sock: 0, rx });
        }
        if let [sock] = &self.socks[..] {
            // A look that must not wait (the receiver drains what queued during a nap): a
            // non-blocking read, since the shortest read timeout still waits a timer tick.
            if wait.is_zero() {
                return Ok(match super::recv_flags(sock, buf, cmsg, MsgFlags::MSG_DONTWAIT)? {
                    Some(rx) => Event::Datagram { sock: 0, rx },
                    None => Event::Idle,
                });
            }
            self.timeout.arm(sock, wait)?;
            return Ok(match super::recv(sock, buf, cmsg)? {
                Some(rx) => Event::Datagram { sock: 0, rx },
                None => Event::Idle,
            });
        }
        loop {
            while let Some((i, err)) = self.ready.pop_front() {
                let sock = &self.socks[i];
                if err && i > 0 {
                    if let Some(error) = icmp::recv_error(sock)? {
                        self.ready.push_front((i, true));
                        return Ok(Event::Icmp { host: i - 1, error });
                    }
                }
                match super::recv_flags(sock, buf, cmsg, MsgFlags::MSG_DONTWAIT) {
                    Ok(Some(rx)) => {
                        self.ready.push_back((i, false));
                        return Ok(Event::Datagram { sock: i, rx });
                    }
                    Ok(None) => {}
                    // The copy of a queued ICMP error: read the queue itself.
                    Err(e) if i > 0 && icmp::is_reported_icmp(&e) => self.ready.push_front((i, true)),
                    Err(e) => return Err(e),
                }
            }
            let mut fds: Vec<PollFd> = self.socks.iter().map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN)).collect();
            match nix::poll::poll(&mut fds, PollTimeout::from(wait_ms(wait))) {
                Ok(0) => return Ok(Event::Idle),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            for (i, fd) in fds.iter().enumerate() {
                let ev = fd.revents().unwrap_or(PollFlags::empty());
                if !ev.is_empty() {
                    self.ready.push_back((i, ev.contains(PollFlags::POLLERR)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::IcmpKind;
    use std::net::{SocketAddr, UdpSocket};

    const WAIT: Duration = Duration::from_millis(20);

    /// Without --hosts the multicast socket is read alone, with its read timeout set to the
    /// caller's wait: an idle read lasts the wait (not a fixed tick), a queued datagram comes at
    /// once whatever the wait.
    #[test]
    fn a_lone_socket_waits_as_asked() {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let to = sock.local_addr().unwrap();
        let mut socks = ProbeSockets::new(sock.try_clone().unwrap(), Vec::new());
        let (mut buf, mut cmsg) = (vec![0u8; 64], super::super::cmsg_buffer());
        let wait = Duration::from_millis(60);
        let t = std::time::Instant::now();
        assert!(matches!(socks.next(&mut buf, &mut cmsg, wait).unwrap(), Event::Idle));
        assert!(t.elapsed() >= wait, "idle after {:?}", t.elapsed());
        UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().send_to(b"ack", to).unwrap();
        let long = Duration::from_secs(600);
        assert!(matches!(socks.next(&mut buf, &mut cmsg, long).unwrap(), Event::Datagram { sock: 0, .. }));
        assert_eq!(sock.read_timeout().unwrap(), Some(long));
    }

    /// Read in batches: every queued datagram comes, in order, each with its own length, source
    /// and kernel stamp, from one system call; a look that must not wait finds none left.
    #[test]
    fn batched_reads_hand_out_every_datagram_in_order() {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        sock.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()).unwrap();
        super::super::enable_rx_metadata(&sock).unwrap();
        let sock: UdpSocket = sock.into();
        let to = sock.local_addr().unwrap();
        let mut socks = ProbeSockets::new(sock, Vec::new());
        socks.read_in_batches(16);
        let from = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let sent: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1 + usize::from(i) * 7]).collect();
        for d in &sent {
            from.send_to(d, to).unwrap();
        }
        let (mut buf, mut cmsg) = (vec![0u8; 64], super::super::cmsg_buffer());
        for d in &sent {
            let Event::Datagram { sock: 0, rx } = socks.next(&mut buf, &mut cmsg, WAIT).unwrap() else {
                panic!("a datagram")
            };
            // Cut to the 16-byte slot, as a plain read into a 16-byte buffer would be.
            let n = d.len().min(16);
            assert_eq!((rx.len.min(16), &buf[..n]), (n, &d[..n]));
            assert_eq!(rx.from, from.local_addr().unwrap());
            assert!(rx.rx_ns > 0);
        }
        assert!(matches!(socks.next(&mut buf, &mut cmsg, Duration::ZERO).unwrap(), Event::Idle));
    }

    /// The read timeout is set again only when the wait moved by more than the slack.
    #[test]
    fn the_read_timeout_is_set_only_when_it_moves() {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let mut t = ReadTimeout::default();
        let ms = Duration::from_millis;
        t.arm(&sock, ms(100)).unwrap();
        assert_eq!(sock.read_timeout().unwrap(), Some(ms(100)));
        t.arm(&sock, ms(100) - ReadTimeout::SLACK).unwrap();
        assert_eq!(sock.read_timeout().unwrap(), Some(ms(100)), "within the slack: kept");
        // (Multiples of 20 ms: the kernel rounds the timeout up to its timer tick.)
        t.arm(&sock, ms(60)).unwrap();
        assert_eq!(sock.read_timeout().unwrap(), Some(ms(60)));
        // Zero would mean no timeout at all: the shortest one is set instead.
        t.arm(&sock, Duration::ZERO).unwrap();
        assert!(sock.read_timeout().unwrap().is_some_and(|d| d > Duration::ZERO && d <= ms(10)));
    }

    /// Loopback only: a datagram to a host's socket, an ICMP error from a closed port, then idle.
    #[test]
    fn datagrams_and_icmp_errors_come_from_the_right_socket() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let multicast = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let host = unicast_socket(lo, 1 << 16, None, None).unwrap();
        let host_addr = SocketAddr::new(lo, host.local_addr().unwrap().port());
        let closed = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap();
        let mut socks = ProbeSockets::new(multicast, vec![host.try_clone().unwrap()]);
        let (mut buf, mut cmsg) = (vec![0u8; 64], super::super::cmsg_buffer());

        let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        peer.send_to(b"ack", host_addr).unwrap();
        match socks.next(&mut buf, &mut cmsg, WAIT).unwrap() {
            Event::Datagram { sock: 1, rx } => {
                assert_eq!((&buf[..rx.len], rx.from), (&b"ack"[..], peer.local_addr().unwrap()));
                assert!(rx.rx_ns > 0);
            }
            e => panic!("expected the datagram on socket 1, got {e:?}"),
        }
        // Nothing listens on `closed`: the kernel answers with a port unreachable.
        host.send_to(b"probe", closed).unwrap();
        match socks.next(&mut buf, &mut cmsg, WAIT).unwrap() {
            Event::Icmp { host: 0, error } => {
                assert_eq!((error.kind, error.reporter), (IcmpKind::PortUnreachable, Some(lo)));
                assert_eq!(error.errno, nix::libc::ECONNREFUSED);
            }
            e => panic!("expected a port unreachable for host 0, got {e:?}"),
        }
        assert!(matches!(socks.next(&mut buf, &mut cmsg, WAIT).unwrap(), Event::Idle));
    }
}
