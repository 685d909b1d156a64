//! Live receiving for the watch: one socket per group (bound to the port, joined to the group,
//! source-specific with `--source`; made by [`net::responder_socket`], as a responder's), all
//! waited on by one thread with epoll (its cost grows with the sockets ready, not with the
//! sockets watched) and read in batches ([`RecvBatch`]: `recvmmsg`), each datagram with its
//! kernel receive timestamp (SO_TIMESTAMPNS) and the socket's kernel drop count (SO_RXQ_OVFL).
//!
//! One socket per group rather than one per port with many joins: Linux caps a socket's IPv4
//! memberships at `net.ipv4.igmp_max_memberships` (20 by default), and with `IP_MULTICAST_ALL`
//! off each socket gets its own group only, so a datagram's group is its socket's.

use std::net::{IpAddr, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::net::{self, Iface, Received, RecvBatch};

/// Bytes per datagram slot: a whole jumbo frame's payload; longer ones are cut (and their
/// length still counted as received).
const SLOT: usize = 9216;

pub struct Receiver {
    socks: Vec<(IpAddr, u16, UdpSocket)>,
    epoll: Epoll,
    events: Vec<EpollEvent>,
    batch: RecvBatch,
    /// Kernel drop count per socket, as last reported.
    drops: Vec<u64>,
}

impl Receiver {
    /// Joins every group (`--source`: source-specific) on `iface`.
    pub fn open(
        groups: &[(IpAddr, u16)],
        iface: Option<&Iface>,
        source: Option<IpAddr>,
        rcvbuf: usize,
    ) -> Result<Self> {
        let mut socks = Vec::with_capacity(groups.len());
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("cannot create an epoll instance")?;
        for (i, &(g, port)) in groups.iter().enumerate() {
            let s = net::responder_socket(g, port, iface, source, rcvbuf)
                .with_context(|| format!("cannot watch {}", group_port(g, port)))?;
            s.set_nonblocking(true).context("cannot make a socket non-blocking")?;
            epoll.add(&s, EpollEvent::new(EpollFlags::EPOLLIN, i as u64)).context("cannot add a socket to epoll")?;
            socks.push((g, port, s));
        }
        let n = socks.len();
        let events = vec![EpollEvent::empty(); n.clamp(1, 256)];
        Ok(Receiver { socks, epoll, events, batch: RecvBatch::new(SLOT), drops: vec![0; n] })
    }

    /// Waits up to `wait` for datagrams, then reads everything queued on every socket that has
    /// some; `f(group, port, payload, metadata)` for each. Returns how many were read.
    pub fn poll(&mut self, wait: Duration, mut f: impl FnMut(IpAddr, u16, &[u8], &Received)) -> Result<usize> {
        let ms = EpollTimeout::from(wait.as_millis().min(60_000) as u16);
        let ready = match self.epoll.wait(&mut self.events, ms) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e).context("epoll_wait"),
        };
        let mut total = 0;
        for e in 0..ready {
            let i = self.events[e].data() as usize;
            let (g, port) = (self.socks[i].0, self.socks[i].1);
            // Until the socket is drained, or a few batches: a busy socket must not starve the
            // others (what is left is read at the next poll, which returns at once).
            for _ in 0..16 {
                let n = self.batch.recv(&self.socks[i].2).context("cannot receive")?;
                for k in 0..n {
                    let (bytes, rx) = self.batch.get(k);
                    if let Some(d) = rx.local_drops {
                        self.drops[i] = d as u64;
                    }
                    // Bound to the port on every address: a unicast datagram to the port is not
                    // the group's.
                    if rx.dst.is_some_and(|d| d != g) {
                        continue;
                    }
                    f(g, port, bytes, &rx);
                }
                total += n;
                if n < net::BATCH {
                    // Drained (what came since waits for the next wait, which returns at once).
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Each group's kernel drop count so far.
    pub fn local_drops(&self) -> impl Iterator<Item = (IpAddr, u16, u64)> + '_ {
        self.socks.iter().zip(&self.drops).map(|(s, d)| (s.0, s.1, *d))
    }
}

/// `239.1.1.1:5000`, `[ff15::1]:5000`.
pub fn group_port(g: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(g, port).to_string()
}
