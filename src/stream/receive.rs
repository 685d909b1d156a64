//! Live receiving for the watch: one socket per group (bound to the port, joined to the group,
//! source-specific with `--source`; made by [`net::responder_socket`], as a responder's), all
//! polled by one thread and read in batches ([`RecvBatch`]: `recvmmsg`), each datagram with its
//! kernel receive timestamp (SO_TIMESTAMPNS) and the socket's kernel drop count (SO_RXQ_OVFL).
//!
//! One socket per group rather than one per port with many joins: Linux caps a socket's IPv4
//! memberships at `net.ipv4.igmp_max_memberships` (20 by default), and with `IP_MULTICAST_ALL`
//! off each socket gets its own group only, so a datagram's group is its socket's.

use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::net::{self, Iface, Received, RecvBatch};

/// Bytes per datagram slot: a whole jumbo frame's payload; longer ones are cut (and their
/// length still counted as received).
const SLOT: usize = 9216;

pub struct Receiver {
    socks: Vec<(IpAddr, u16, UdpSocket)>,
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
        for &(g, port) in groups {
            let s = net::responder_socket(g, port, iface, source, rcvbuf)
                .with_context(|| format!("cannot watch {}", group_port(g, port)))?;
            s.set_nonblocking(true).context("cannot make a socket non-blocking")?;
            socks.push((g, port, s));
        }
        let n = socks.len();
        Ok(Receiver { socks, batch: RecvBatch::new(SLOT), drops: vec![0; n] })
    }

    /// Waits up to `wait` for datagrams, then reads everything queued on every socket that has
    /// some; `f(group, port, payload, metadata)` for each. Returns how many were read.
    pub fn poll(&mut self, wait: Duration, mut f: impl FnMut(IpAddr, u16, &[u8], &Received)) -> Result<usize> {
        let ready: Vec<usize> = {
            let mut fds: Vec<PollFd> = self.socks.iter().map(|s| PollFd::new(s.2.as_fd(), PollFlags::POLLIN)).collect();
            let ms = PollTimeout::from(wait.as_millis().min(60_000) as u16);
            match poll(&mut fds, ms) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            fds.iter().enumerate().filter(|(_, p)| p.any().unwrap_or(false)).map(|(i, _)| i).collect()
        };
        let mut total = 0;
        for i in ready {
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
                if n == 0 {
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
