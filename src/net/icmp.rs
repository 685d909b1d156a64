//! ICMP errors on the unicast path, read from a socket's error queue (`IP_RECVERR` /
//! `IPV6_RECVERR`, `MSG_ERRQUEUE`).
//!
//! Why: a host that is silent on unicast can be silent for three different reasons, and the
//! kernel already knows which one. A *port unreachable* means the host is up but nothing listens
//! on the port (no responder, or a different `--port`); a *host unreachable* means the prober's
//! own kernel found no neighbour for it (down, or not on the LAN); an *administratively
//! prohibited* means a firewall rejected it. Only plain silence (a firewall that drops, or a host
//! that is gone without trace) is left unexplained.
//!
//! Measured in the namespace lab (Linux 6.18): port unreachable arrives from the host
//! (origin ICMP, type 3 code 3 / ICMPv6 type 1 code 4, rate-limited by the host's kernel to about
//! one a second after a burst); host unreachable is generated locally when neighbour resolution
//! fails (~3 s after the first probe, type 3 code 1 / ICMPv6 type 1 code 3, reported by the
//! prober's own address).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::AsRawFd;

use nix::libc;
use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, SockaddrStorage};

use crate::run::IcmpKind;

/// One error from a socket's error queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IcmpError {
    pub kind: IcmpKind,
    /// Who sent the error: the host itself (port unreachable), a router, or this machine's own
    /// address when the kernel generated it (failed neighbour resolution).
    pub reporter: Option<IpAddr>,
    /// The errno the kernel maps it to (ECONNREFUSED, EHOSTUNREACH, …).
    pub errno: i32,
}

const SO_EE_ORIGIN_ICMP: u8 = 2;
const SO_EE_ORIGIN_ICMP6: u8 = 3;

/// Classifies an ICMP (origin 2) or ICMPv6 (origin 3) type and code.
pub(crate) fn classify(origin: u8, icmp_type: u8, code: u8) -> IcmpKind {
    match (origin, icmp_type, code) {
        // ICMP destination unreachable.
        (SO_EE_ORIGIN_ICMP, 3, 3) => IcmpKind::PortUnreachable,
        (SO_EE_ORIGIN_ICMP, 3, 1 | 7 | 10) => IcmpKind::HostUnreachable,
        (SO_EE_ORIGIN_ICMP, 3, 0 | 6 | 9) => IcmpKind::NetUnreachable,
        (SO_EE_ORIGIN_ICMP, 3, 13) => IcmpKind::AdminProhibited,
        (SO_EE_ORIGIN_ICMP, 11, _) => IcmpKind::TimeExceeded,
        // ICMPv6 destination unreachable.
        (SO_EE_ORIGIN_ICMP6, 1, 4) => IcmpKind::PortUnreachable,
        (SO_EE_ORIGIN_ICMP6, 1, 3) => IcmpKind::HostUnreachable,
        (SO_EE_ORIGIN_ICMP6, 1, 0) => IcmpKind::NetUnreachable,
        (SO_EE_ORIGIN_ICMP6, 1, 1 | 5 | 6) => IcmpKind::AdminProhibited,
        (SO_EE_ORIGIN_ICMP6, 3, _) => IcmpKind::TimeExceeded,
        _ => IcmpKind::Other { icmp_type, code },
    }
}

fn from_ext(e: &libc::sock_extended_err, reporter: Option<IpAddr>) -> IcmpError {
    IcmpError { kind: classify(e.ee_origin, e.ee_type, e.ee_code), reporter, errno: e.ee_errno as i32 }
}

/// Reads one error from `sock`'s error queue without blocking; `Ok(None)` when it is empty.
pub(crate) fn recv_error(sock: &UdpSocket) -> io::Result<Option<IcmpError>> {
    let mut data = [0u8; 64];
    let mut iov = [io::IoSliceMut::new(&mut data)];
    // Room for the error, its offender address and the receive timestamp that SO_TIMESTAMPNS
    // also attaches to error-queue messages (a truncated buffer would lose the error).
    let mut cmsg = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6, nix::sys::time::TimeSpec, [u64; 8]);
    let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
    let msg = match socket::recvmsg::<SockaddrStorage>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), flags) {
        Ok(m) => m,
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let unknown = IcmpError { kind: IcmpKind::Other { icmp_type: 0, code: 0 }, reporter: None, errno: 0 };
    // A message was taken off the queue: never report it as an empty queue.
    let Ok(cmsgs) = msg.cmsgs() else { return Ok(Some(unknown)) };
    for c in cmsgs {
        match c {
            ControlMessageOwned::Ipv4RecvErr(e, from) => {
                let ip = from.map(|a| IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))));
                return Ok(Some(from_ext(&e, ip)));
            }
            ControlMessageOwned::Ipv6RecvErr(e, from) => {
                let ip = from.map(|a| IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)));
                return Ok(Some(from_ext(&e, ip)));
            }
            _ => {}
        }
    }
    Ok(Some(unknown))
}

/// Errors the kernel also reports, once, on the next send or receive of a socket with
/// `IP_RECVERR` on (a copy of the newest queued ICMP error): they concern an earlier probe.
pub(crate) fn is_reported_icmp(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EACCES | libc::EPERM | libc::EPROTO)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_both_families() {
        assert_eq!(classify(2, 3, 3), IcmpKind::PortUnreachable);
        assert_eq!(classify(2, 3, 1), IcmpKind::HostUnreachable);
        assert_eq!(classify(2, 3, 13), IcmpKind::AdminProhibited);
        assert_eq!(classify(2, 11, 0), IcmpKind::TimeExceeded);
        assert_eq!(classify(3, 1, 4), IcmpKind::PortUnreachable);
        assert_eq!(classify(3, 1, 3), IcmpKind::HostUnreachable);
        assert_eq!(classify(3, 1, 1), IcmpKind::AdminProhibited);
        assert_eq!(classify(3, 1, 0), IcmpKind::NetUnreachable);
        // Same numbers, other family: not confused.
        assert_eq!(classify(3, 3, 3), IcmpKind::TimeExceeded);
        assert_eq!(classify(1, 0, 0), IcmpKind::Other { icmp_type: 0, code: 0 });
    }
}
