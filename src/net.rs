//! Socket setup (socket2) and datagram receive with kernel metadata (nix recvmsg).
//!
//! Both engines use blocking UDP sockets with a short read timeout, so their threads can notice a
//! stop request without busy-waiting. Receive timestamps come from the kernel (`SO_TIMESTAMPNS`,
//! CLOCK_REALTIME): they are taken when the packet is queued, before the thread wakes, and they
//! share a clock with the transmit stamps in probes, so RTT = rx − tx stays in one clock domain.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn};
use nix::sys::time::TimeSpec;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};

/// How often blocked reads wake to check for a stop request.
pub const READ_TICK: Duration = Duration::from_millis(20);

/// A local interface, as resolved from `--iface`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub index: u32,
    pub addr: Ipv4Addr,
}

/// Resolves `--iface` given as an interface name (`eth0`) or one of its IPv4 addresses.
pub fn resolve_iface(spec: &str) -> Result<Iface> {
    let want_addr: Option<Ipv4Addr> = spec.parse().ok();
    let addrs = nix::ifaddrs::getifaddrs().context("cannot list network interfaces")?;
    let mut name_found = false;
    for ifa in addrs {
        let v4 = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()).map(|a| a.ip());
        let matches = match want_addr {
            Some(want) => v4 == Some(want),
            None => ifa.interface_name == spec,
        };
        if ifa.interface_name == spec {
            name_found = true;
        }
        if let (true, Some(addr)) = (matches, v4) {
            let index = nix::net::if_::if_nametoindex(ifa.interface_name.as_str()).unwrap_or(0);
            return Ok(Iface { name: ifa.interface_name, index, addr });
        }
    }
    match (want_addr, name_found) {
        (Some(_), _) => bail!("--iface {spec}: no local interface has this address"),
        (None, true) => bail!("--iface {spec}: the interface has no IPv4 address"),
        (None, false) => bail!("--iface {spec}: no such interface (see `ip -br addr`)"),
    }
}

/// Checks that `--group` is an IPv4 multicast address this build can use.
pub fn check_group(group: IpAddr) -> Result<Ipv4Addr> {
    match group {
        IpAddr::V4(g) if g.is_multicast() => Ok(g),
        IpAddr::V4(g) => {
            bail!("--group {g}: not a multicast address (IPv4 multicast is 224.0.0.0/4, e.g. 239.255.42.42)")
        }
        IpAddr::V6(g) => bail!("--group {g}: IPv6 groups are not supported by this version; use an IPv4 group"),
    }
}

fn udp_socket() -> Result<Socket> {
    Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).context("cannot create a UDP socket")
}

/// Asks for a receive buffer; the kernel caps it at net.core.rmem_max without an error.
fn set_rcvbuf(sock: &Socket, bytes: usize) -> Result<()> {
    sock.set_recv_buffer_size(bytes).with_context(|| format!("cannot set a {bytes}-byte receive buffer"))
}

/// Kernel receive timestamps, and the count of datagrams the kernel dropped on this socket because
/// its buffer was full (SO_RXQ_OVFL): local drops, which are not network loss.
fn enable_rx_metadata(sock: &Socket) -> Result<()> {
    socket::setsockopt(sock, sockopt::ReceiveTimestampns, &true).context("cannot enable SO_TIMESTAMPNS")?;
    socket::setsockopt(sock, sockopt::RxqOvfl, &1).context("cannot enable SO_RXQ_OVFL")
}

/// The prober's socket: sends probes to the group, receives the unicast acks.
pub fn prober_socket(iface: Option<&Iface>, ttl: u32, rcvbuf: usize) -> Result<UdpSocket> {
    let sock = udp_socket()?;
    sock.set_multicast_ttl_v4(ttl).with_context(|| format!("--ttl {ttl}: rejected by the kernel"))?;
    // Unicast probes (to --hosts) leave with a known TTL, so the hop count can be read off acks.
    sock.set_ttl_v4(crate::prober::UNICAST_TTL).context("cannot set IP_TTL")?;
    // Loop must be on: responders on this very host (and the loopback demo) count too.
    sock.set_multicast_loop_v4(true).context("cannot enable IP_MULTICAST_LOOP")?;
    if let Some(i) = iface {
        sock.set_multicast_if_v4(&i.addr)
            .with_context(|| format!("--iface {}: cannot send multicast from it", i.name))?;
    }
    set_rcvbuf(&sock, rcvbuf)?;
    enable_rx_metadata(&sock)?;
    let bind = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
    sock.bind(&bind.into()).context("cannot bind the prober's socket")?;
    sock.set_read_timeout(Some(READ_TICK))?;
    Ok(sock.into())
}

/// A responder's socket: bound to the group's port on every address, joined to the group.
///
/// Bound to INADDR_ANY (not the group address) so that unicast probes reach it too; with
/// `IP_MULTICAST_ALL` off it still receives only the groups it joined itself. `SO_REUSEADDR` lets
/// several responders share a port on one host: each gets its own copy of every multicast probe.
pub fn responder_socket(group: Ipv4Addr, port: u16, iface: Option<&Iface>, rcvbuf: usize) -> Result<UdpSocket> {
    let sock = udp_socket()?;
    sock.set_reuse_address(true).context("cannot set SO_REUSEADDR")?;
    set_rcvbuf(&sock, rcvbuf)?;
    enable_rx_metadata(&sock)?;
    socket::setsockopt(&sock, sockopt::Ipv4PacketInfo, &true).context("cannot enable IP_PKTINFO")?;
    socket::setsockopt(&sock, sockopt::Ipv4RecvTtl, &true).context("cannot enable IP_RECVTTL")?;
    sock.set_multicast_all_v4(false).context("cannot clear IP_MULTICAST_ALL")?;
    let bind = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    sock.bind(&bind.into()).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => anyhow::anyhow!("--port {port}: in use by a program that does not share it"),
        io::ErrorKind::PermissionDenied => {
            anyhow::anyhow!("--port {port}: permission denied (ports below 1024 need root)")
        }
        _ => anyhow::anyhow!("--port {port}: cannot bind: {e}"),
    })?;
    let via = match iface {
        Some(i) => InterfaceIndexOrAddress::Index(i.index),
        None => InterfaceIndexOrAddress::Address(Ipv4Addr::UNSPECIFIED),
    };
    sock.join_multicast_v4_n(&group, &via).map_err(|e| {
        let on = iface.map_or("the default interface".to_string(), |i| i.name.clone());
        match e.raw_os_error() {
            Some(nix::libc::ENODEV) if iface.is_none() => {
                anyhow::anyhow!("cannot join {group}: no default multicast route; pick an interface with --iface")
            }
            _ => anyhow::anyhow!("cannot join {group} on {on}: {e}"),
        }
    })?;
    sock.set_read_timeout(Some(READ_TICK))?;
    Ok(sock.into())
}

/// A socket bound to `addr` on an ephemeral port, for a responder that replies from a chosen
/// source address (the loopback demo gives each responder its own 127.0.0.x).
pub fn reply_socket(addr: Ipv4Addr) -> Result<UdpSocket> {
    UdpSocket::bind((addr, 0)).with_context(|| format!("cannot bind a reply socket to {addr}"))
}

/// One received datagram and what the kernel said about it.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub len: usize,
    pub from: SocketAddr,
    /// Kernel receive time, ns since the epoch; the read time if the kernel gave none.
    pub rx_ns: u64,
    /// IP TTL as received (0 when not asked for).
    pub ttl: u8,
    /// Destination address (only with IP_PKTINFO): tells multicast from unicast arrival.
    pub dst: Option<Ipv4Addr>,
    /// Datagrams the kernel has dropped on this socket so far for lack of buffer space.
    pub local_drops: Option<u32>,
}

/// Receives one datagram with its ancillary data. `Ok(None)` when the read timed out.
pub fn recv(sock: &UdpSocket, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Option<Received>> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = match socket::recvmsg::<SockaddrIn>(sock.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty()) {
        Ok(m) => m,
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let from = msg.address.map(|a| SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())));
    let mut out = Received {
        len: msg.bytes,
        from: from.unwrap_or(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))),
        rx_ns: 0,
        ttl: 0,
        dst: None,
        local_drops: None,
    };
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::ScmTimestampns(ts) => out.rx_ns = timespec_ns(&ts),
                ControlMessageOwned::Ipv4Ttl(ttl) => out.ttl = ttl.clamp(0, 255) as u8,
                ControlMessageOwned::RxqOvfl(n) => out.local_drops = Some(n),
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    out.dst = Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
                }
                _ => {}
            }
        }
    }
    if out.rx_ns == 0 {
        out.rx_ns = now_ns();
    }
    Ok(Some(out))
}

/// A buffer large enough for every control message [`recv`] asks for.
pub fn cmsg_buffer() -> Vec<u8> {
    nix::cmsg_space!(TimeSpec, nix::libc::in_pktinfo, nix::libc::c_int, u32)
}

fn timespec_ns(ts: &TimeSpec) -> u64 {
    (ts.tv_sec() as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec() as u64)
}

/// Wall-clock time in ns since the epoch: the clock kernel receive timestamps use.
pub fn now_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME).expect("CLOCK_REALTIME is always available");
    timespec_ns(&ts)
}

/// Lowers this thread's timer slack to 1 ns, so sleeps end within tens of µs of their deadline
/// instead of the default 50 µs slack plus scheduling delay.
pub fn lower_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(1);
}

/// Receive buffer the engines ask for by default: enough for ~4 k acks of a burst.
pub const DEFAULT_RCVBUF: usize = 4 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolves_by_name_and_address() {
        let by_name = resolve_iface("lo").unwrap();
        assert_eq!(by_name.addr, Ipv4Addr::LOCALHOST);
        assert!(by_name.index > 0);
        assert_eq!(resolve_iface("127.0.0.1").unwrap(), by_name);
    }

    #[test]
    fn bad_interfaces_and_groups_are_named_in_errors() {
        let e = resolve_iface("nosuch0").unwrap_err().to_string();
        assert!(e.contains("--iface nosuch0") && e.contains("no such interface"), "{e}");
        let e = resolve_iface("192.0.2.77").unwrap_err().to_string();
        assert!(e.contains("no local interface has this address"), "{e}");
        let e = check_group("10.1.2.3".parse().unwrap()).unwrap_err().to_string();
        assert!(e.contains("--group 10.1.2.3") && e.contains("not a multicast"), "{e}");
        assert!(check_group("239.1.2.3".parse().unwrap()).is_ok());
    }
}
