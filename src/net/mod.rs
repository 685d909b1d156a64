//! Socket setup (socket2) and datagram receive with kernel metadata (nix recvmsg).
//!
//! The responder and the prober's receiver block on their sockets until the next datagram or the
//! next deadline they actually have ([`ReadTimeout`], [`ReadySet::wait`], [`ProbeSockets`]), not
//! on a fixed tick: at low rates fixed wake-ups cost more CPU than the probes (issues 25 and 26).
//! A loop that has only a stop flag to look at waits at most [`STOP_TICK`]. Receive timestamps come from the kernel (`SO_TIMESTAMPNS`,
//! CLOCK_REALTIME): they are taken when the packet is queued, before the thread wakes, and they
//! share a clock with the transmit stamps in probes, so RTT = rx − tx stays in one clock domain.

pub(crate) mod batch;
pub mod icmp;
pub mod membership;
pub mod membership_tap;
mod probe_sockets;
pub mod route;
mod source_filter;
pub(crate) mod tap;

pub(crate) use batch::{RecvBatch, SendBatch, BATCH};
pub(crate) use probe_sockets::{unicast_socket, Event, ProbeSockets};

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage};
use nix::sys::time::TimeSpec;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};

/// The longest a loop waits without looking at its stop flag when nothing else wakes it.
///
/// The stop flags are plain `AtomicBool`s set by many hands (the Ctrl-C handler's thread,
/// `serve`'s quit and window cuts, `demo` and `mesh`, the tests), none of which can ring a file
/// descriptor a loop waits on; a quarter of a second bounds how long Ctrl-C takes to end such a
/// loop (a human does not notice it) while an idle loop wakes 4 times a second instead of 50
/// (the 20 ms tick this replaced cost more CPU at 10 probes/s than the probes did: issue 25).
/// Loops with a real deadline (a probe to close, the end of a run, a schedule) wake for it.
pub(crate) const STOP_TICK: Duration = Duration::from_millis(250);

/// A socket's read timeout (`SO_RCVTIMEO`), set only when it must change, so that a blocking
/// read (one system call per datagram, which the high-rate paths depend on) still ends at the
/// caller's next deadline.
///
/// Setting it before every read would add a system call per datagram; instead the timeout set is
/// kept while it is within [`ReadTimeout::SLACK`] of the one wanted: a read then ends at most
/// that much after its deadline (plus the kernel's timer granularity), and under a steady stream,
/// where the wanted timeout shrinks as its deadline nears, it is set at most once per `SLACK`.
#[derive(Debug, Default)]
pub(crate) struct ReadTimeout {
    armed: Option<Duration>,
}

impl ReadTimeout {
    /// How far the timeout set may differ from the one wanted.
    pub(crate) const SLACK: Duration = Duration::from_millis(2);
    /// The shortest timeout set: zero would mean none at all (block forever).
    const MIN: Duration = Duration::from_millis(1);

    /// Makes the next blocking read on `sock` return within about `wait`.
    pub(crate) fn arm(&mut self, sock: &UdpSocket, wait: Duration) -> io::Result<()> {
        let want = wait.max(Self::MIN);
        let close = self.armed.is_some_and(|a| a.abs_diff(want) <= Self::SLACK);
        if !close {
            sock.set_read_timeout(Some(want))?;
            self.armed = Some(want);
        }
        Ok(())
    }
}

/// A wait in whole milliseconds for poll(2)/epoll_wait(2), rounded up: rounded down, a wait of
/// less than a millisecond would return at once, again and again, until its deadline.
pub(crate) fn wait_ms(wait: Duration) -> u16 {
    let ms = wait.as_nanos().div_ceil(1_000_000);
    u16::try_from(ms).unwrap_or(u16::MAX)
}

pub(crate) use crate::run::UNICAST_TTL;

/// A local interface, as resolved from `--iface`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub index: u32,
    /// Its IPv4 address, which IPv4 multicast sends from.
    pub addr: Option<Ipv4Addr>,
    /// Its IPv6 address, which IPv6 multicast sends from: the one given to `--iface`, else its
    /// first global one, else its link-local one.
    pub addr6: Option<Ipv6Addr>,
    /// The address `--iface` was given as, if it was given as one (not as a name).
    pub given: Option<IpAddr>,
    /// Not named with `--iface`: the interface the route to the group leaves by.
    pub by_route: bool,
}

impl Iface {
    fn v4(&self) -> Result<Ipv4Addr> {
        self.addr.with_context(|| format!("--iface {}: the interface has no IPv4 address", self.name))
    }

    /// The address multicast to `group` leaves from: the IPv4 or the IPv6 one, by family.
    pub(crate) fn source_for(&self, group: IpAddr) -> Option<IpAddr> {
        match group {
            IpAddr::V4(_) => self.addr.map(IpAddr::V4),
            IpAddr::V6(_) => self.addr6.map(IpAddr::V6),
        }
    }

    /// `--iface` given as an address of the other family than `--group` is a mistake, not
    /// something to ignore silently.
    pub(crate) fn check_family(&self, group: IpAddr) -> Result<()> {
        match self.given {
            Some(a) if a.is_ipv6() != group.is_ipv6() => bail!(
                "--iface {a}: an {} address, but --group {group} is {}; give the interface's name or its {} address",
                family(a),
                family(group),
                family(group)
            ),
            _ => Ok(()),
        }
    }
}

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv6() {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// Every address of this machine's interfaces: the prober recognises itself in `--hosts`.
pub(crate) fn local_addrs() -> Result<Vec<IpAddr>> {
    let addrs = nix::ifaddrs::getifaddrs().context("cannot list network interfaces")?;
    Ok(addrs.filter_map(|i| ip_of(&i.address)).collect())
}

fn ip_of(a: &Option<SockaddrStorage>) -> Option<IpAddr> {
    let a = a.as_ref()?;
    a.as_sockaddr_in().map(|v4| IpAddr::V4(v4.ip())).or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
}

/// Resolves `--iface` given as an interface name (`eth0`) or one of its addresses.
pub fn resolve_iface(spec: &str) -> Result<Iface> {
    let want: Option<IpAddr> = spec.parse().ok();
    let addrs: Vec<_> = nix::ifaddrs::getifaddrs().context("cannot list network interfaces")?.collect();
    let name = match want {
        Some(ip) => addrs.iter().find(|i| ip_of(&i.address) == Some(ip)).map(|i| i.interface_name.clone()),
        None => addrs.iter().find(|i| i.interface_name == spec).map(|i| i.interface_name.clone()),
    };
    let Some(name) = name else {
        match want {
            Some(_) => bail!("--iface {spec}: no local interface has this address"),
            None => bail!("--iface {spec}: no such interface (see `ip -br addr`)"),
        }
    };
    let v4 = |i: &&nix::ifaddrs::InterfaceAddress| match ip_of(&i.address) {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    };
    // Given an IPv4 address, that one; given a name, the interface's first IPv4 address.
    let addr = match want {
        Some(IpAddr::V4(a)) => Some(a),
        _ => addrs.iter().filter(|i| i.interface_name == name).find_map(|i| v4(&i)),
    };
    let v6s: Vec<Ipv6Addr> = (addrs.iter().filter(|i| i.interface_name == name))
        .filter_map(|i| match ip_of(&i.address) {
            Some(IpAddr::V6(a)) => Some(a),
            _ => None,
        })
        .collect();
    let addr6 = match want {
        Some(IpAddr::V6(a)) => Some(a),
        _ => v6s.iter().find(|a| !a.is_unicast_link_local()).or(v6s.first()).copied(),
    };
    let index = nix::net::if_::if_nametoindex(name.as_str()).unwrap_or(0);
    Ok(Iface { name, index, addr, addr6, given: want, by_route: false })
}

/// Without `--iface`: the interface the route to an IPv4 `group` leaves by, so that every output
/// can name it (connecting a UDP socket looks the route up and sends nothing). IPv6 groups need
/// `--iface` anyway.
pub(crate) fn route_iface(group: IpAddr) -> Result<Option<Iface>> {
    if group.is_ipv6() {
        return Ok(None);
    }
    check_multicast_route(group)?;
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).context("cannot open a UDP socket")?;
    sock.connect((group, 9))
        .with_context(|| format!("cannot send to {group}: no multicast route; pick an interface with --iface"))?;
    let local = sock.local_addr().context("cannot read the route's source address")?.ip();
    match resolve_iface(&local.to_string()) {
        Ok(i) => Ok(Some(Iface { given: None, by_route: true, ..i })),
        // The route's source address belongs to no interface (unusual policy routing): leave the
        // choice to the kernel, as before.
        Err(_) => Ok(None),
    }
}

/// Checks that `--group` is a multicast address: IPv4 224.0.0.0/4, or IPv6 ff00::/8 without
/// embedded-RP flags: ff0X:: (permanent), ff1X:: (transient) and ff3X:: (source-specific) groups.
pub(crate) fn check_group(group: IpAddr) -> Result<IpAddr> {
    check_group_of("--group", group)
}

/// [`check_group`] for a group that came from `flag` (`--groups` names the list it is in).
pub(crate) fn check_group_of(flag: &str, group: IpAddr) -> Result<IpAddr> {
    match group {
        IpAddr::V4(g) if g.is_multicast() => Ok(group),
        IpAddr::V4(g) => {
            bail!("{flag} {g}: not a multicast address (IPv4 multicast is 224.0.0.0/4, e.g. 239.255.42.42)")
        }
        IpAddr::V6(g) if g.is_multicast() && matches!(g.segments()[0] & 0xfff0, 0xff00 | 0xff10 | 0xff30) => Ok(group),
        IpAddr::V6(g) if g.is_multicast() => {
            bail!("{flag} {g}: use a permanent (ff0X::), transient (ff1X::) or source-specific (ff3X::) IPv6 group")
        }
        IpAddr::V6(g) => bail!("{flag} {g}: not a multicast address (IPv6 multicast is ff00::/8, e.g. ff12::4242)"),
    }
}

/// IPv6 multicast needs an interface: the kernel has no default for most scopes, and link-local
/// groups mean nothing without one.
pub(crate) fn need_v6_iface(iface: Option<&Iface>, group: Ipv6Addr) -> Result<&Iface> {
    let i = iface.with_context(|| format!("--group {group}: IPv6 groups need --iface NAME"))?;
    if i.name == "lo" {
        bail!("--group {group}: Linux does not carry IPv6 multicast over lo; use a real or veth interface");
    }
    Ok(i)
}

pub(crate) fn udp_socket(v6: bool) -> Result<Socket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let sock = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).context("cannot create a UDP socket")?;
    if v6 {
        sock.set_only_v6(true).context("cannot set IPV6_V6ONLY")?;
    }
    Ok(sock)
}

/// Asks for a receive buffer. The kernel caps it at net.core.rmem_max without an error; a
/// process with CAP_NET_ADMIN (root) then gets the size asked (SO_RCVBUFFORCE, as the packet taps
/// do): `--rcvbuf 32M` holds ~30 000 small datagrams, 150 ms at 200 000 probes/s, where a
/// responder with this VM's 4 MiB rmem_max lost probes in its 25-50 ms stalls
/// (results/limits-2026-12-03.md). Without the privilege, the cap.
pub(crate) fn set_rcvbuf(sock: &Socket, bytes: usize) -> Result<()> {
    sock.set_recv_buffer_size(bytes).with_context(|| format!("cannot set a {bytes}-byte receive buffer"))?;
    // The kernel reports twice what it granted (its bookkeeping's share); it takes at most
    // INT_MAX / 2.
    let bytes = bytes.min(i32::MAX as usize / 2);
    if sock.recv_buffer_size().unwrap_or(0) / 2 < bytes {
        // EPERM without CAP_NET_ADMIN: the capped buffer stays.
        let _ = socket::setsockopt(sock, sockopt::RcvBufForce, &bytes);
    }
    Ok(())
}

/// Kernel receive timestamps, and the count of datagrams the kernel dropped on this socket because
/// its buffer was full (SO_RXQ_OVFL): local drops, which are not network loss.
pub(crate) fn enable_rx_metadata(sock: &Socket) -> Result<()> {
    socket::setsockopt(sock, sockopt::ReceiveTimestampns, &true).context("cannot enable SO_TIMESTAMPNS")?;
    socket::setsockopt(sock, sockopt::RxqOvfl, &1).context("cannot enable SO_RXQ_OVFL")
}

/// The prober's socket for `group`'s family: sends probes to the group, receives the unicast acks,
/// on `ack_port` (`--ack-port`) or an ephemeral port.
///
/// Bound to the address its probes leave from (the interface's, or the one the route to the
/// group picks), never to the wildcard: a keyed probe's tag binds its source address (see
/// `crate::auth`), so the prober must know it for sure, and a bound socket's datagrams always
/// carry the bound address.
pub(crate) fn prober_socket(
    group: IpAddr,
    iface: Option<&Iface>,
    ttl: u32,
    rcvbuf: usize,
    ack_port: Option<u16>,
) -> Result<UdpSocket> {
    let ttl_err = || format!("--ttl {ttl}: rejected by the kernel");
    let mut routed = None;
    match iface {
        Some(i) => i.check_family(group)?,
        // IPv6 groups need an interface anyway (below).
        None if group.is_ipv4() => routed = check_multicast_route(group)?,
        None => {}
    }
    // Multicast loop must be on: responders on this very host (and the loopback demo) count too.
    let sock = match group {
        IpAddr::V4(_) => {
            let sock = udp_socket(false)?;
            sock.set_multicast_ttl_v4(ttl).with_context(ttl_err)?;
            sock.set_multicast_loop_v4(true).context("cannot enable IP_MULTICAST_LOOP")?;
            // IP_MULTICAST_IF by address sends from that very address.
            let from = match iface {
                Some(i) => {
                    let a = i.v4()?;
                    sock.set_multicast_if_v4(&a)
                        .with_context(|| format!("--iface {}: cannot send multicast from it", i.name))?;
                    a
                }
                None => match routed {
                    Some(IpAddr::V4(a)) => a,
                    _ => Ipv4Addr::UNSPECIFIED,
                },
            };
            // Bound to a fixed --ack-port, the socket must not take datagrams to groups other
            // sockets of this host joined on that port (Linux's IP_MULTICAST_ALL default).
            sock.set_multicast_all_v4(false).context("cannot clear IP_MULTICAST_ALL")?;
            let at = SocketAddrV4::new(from, ack_port.unwrap_or(0));
            sock.bind(&at.into()).map_err(|e| match ack_port {
                Some(_) => ack_port_error(e, ack_port, at.port(), "the acks"),
                None => anyhow::anyhow!("cannot bind the prober's socket to {from}: {e}"),
            })?;
            sock
        }
        IpAddr::V6(g) => {
            let i = need_v6_iface(iface, g)?;
            let sock = udp_socket(true)?;
            sock.set_multicast_hops_v6(ttl).with_context(ttl_err)?;
            sock.set_multicast_loop_v6(true).context("cannot enable IPV6_MULTICAST_LOOP")?;
            sock.set_multicast_if_v6(i.index)
                .with_context(|| format!("--iface {}: cannot send IPv6 multicast from it", i.name))?;
            // From the interface's own IPv6 address, the one the reports show.
            let scope = |a: &Ipv6Addr| if a.is_unicast_link_local() { i.index } else { 0 };
            let port = ack_port.unwrap_or(0);
            let from = i.addr6.map_or(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0), |a| {
                SocketAddrV6::new(a, port, 0, scope(&a))
            });
            sock.set_multicast_all_v6(false).context("cannot clear IPV6_MULTICAST_ALL")?;
            sock.bind(&from.into()).map_err(|e| match ack_port {
                Some(_) => ack_port_error(e, ack_port, port, "the acks"),
                None => anyhow::anyhow!("cannot bind the prober's socket to {}: {e}", from.ip()),
            })?;
            sock
        }
    };
    set_rcvbuf(&sock, rcvbuf)?;
    enable_rx_metadata(&sock)?;
    // The receiver sets the read timeout to its next deadline ([`ReadTimeout`]); until then a
    // read would block, so it must not read before it does.
    sock.set_read_timeout(Some(STOP_TICK))?;
    Ok(sock.into())
}

/// A prober socket's bind error, naming `--ack-port` when it was given: `port` is the port that
/// failed (the ack port, or one after it for a `--hosts` host), `what` what it was for.
pub(crate) fn ack_port_error(e: io::Error, ack_port: Option<u16>, port: u16, what: &str) -> anyhow::Error {
    let Some(flag) = ack_port else {
        return anyhow::anyhow!("cannot bind the prober's socket for {what}: {e}");
    };
    let which = if port == flag { String::new() } else { format!(": port {port}, for {what},") };
    match e.kind() {
        io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "--ack-port {flag}{which} is in use (another prober, or another program: see `ss -ulpn sport = :{port}`); pick another port"
        ),
        io::ErrorKind::PermissionDenied => {
            anyhow::anyhow!("--ack-port {flag}{which} permission denied (ports below 1024 need root)")
        }
        _ => anyhow::anyhow!("--ack-port {flag}{which} cannot bind: {e}"),
    }
}

/// Without `--iface`, multicast leaves by the route to the group: check there is one before any
/// probe is sent (connecting a UDP socket looks the route up and sends nothing). Returns the
/// source address that route gives.
fn check_multicast_route(group: IpAddr) -> Result<Option<IpAddr>> {
    let sock = udp_socket(group.is_ipv6())?;
    match sock.connect(&SocketAddr::new(group, 9).into()) {
        Ok(()) => Ok(sock.local_addr().ok().and_then(|a| a.as_socket()).map(|a| a.ip())),
        Err(e) if matches!(e.raw_os_error(), Some(nix::libc::ENETUNREACH | nix::libc::EHOSTUNREACH)) => {
            bail!("cannot send to {group}: no multicast route; pick an interface with --iface")
        }
        Err(e) => bail!("cannot send to {group}: {e}; pick an interface with --iface"),
    }
}

/// A responder's socket: bound to the group's port on every address, joined to the group
/// (source-specific when `source` is given).
///
/// Bound to the wildcard address (not the group address) so that unicast probes reach it too;
/// with `IP_MULTICAST_ALL` off it still receives only the groups it joined itself. `SO_REUSEADDR`
/// lets several responders share a port on one host: each gets its own copy of every multicast
/// probe.
pub fn responder_socket(
    group: IpAddr,
    port: u16,
    iface: Option<&Iface>,
    source: Option<IpAddr>,
    rcvbuf: usize,
) -> Result<UdpSocket> {
    let mut socks = responder_sockets(&[group], port, iface, source, rcvbuf)?;
    Ok(socks.remove(0))
}

/// Sockets bound to `port` that together joined every group of `groups`: as many groups on each
/// as the kernel lets one socket join (`net.ipv4.igmp_max_memberships`, 20 by default; for IPv6
/// the socket option memory, `net.core.optmem_max`), a new socket when it refuses the next one
/// (ENOBUFS), as mcjoin does. With `IP_MULTICAST_ALL` off each socket gets only its own groups'
/// datagrams, so none is read twice.
pub fn responder_sockets(
    groups: &[IpAddr],
    port: u16,
    iface: Option<&Iface>,
    source: Option<IpAddr>,
    rcvbuf: usize,
) -> Result<Vec<UdpSocket>> {
    let first = *groups.first().context("no group to join")?;
    if let Some(i) = iface {
        i.check_family(first)?;
    }
    if groups.len() > 1 {
        if let Some(socks) = socket_per_group(groups, port, iface, source, rcvbuf)? {
            return Ok(socks);
        }
    }
    let mut done: Vec<UdpSocket> = Vec::new();
    let mut current: Option<(Socket, usize)> = None;
    let mut total = 0usize;
    for &group in groups {
        loop {
            let (sock, joined) = match &mut current {
                Some(c) => c,
                None => current.insert((
                    bound_responder_socket(first.is_ipv6(), port, rcvbuf)
                        .map_err(|e| out_of_descriptors(&e, groups.len(), total, done.len()).unwrap_or(e))?,
                    0,
                )),
            };
            match join_group(sock, group, iface, source)? {
                Ok(()) => {
                    *joined += 1;
                    total += 1;
                    break;
                }
                // This socket is full: the next one takes the group.
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) && *joined > 0 => {
                    let (full, _) = current.take().expect("a current socket");
                    done.push(full.into());
                }
                Err(e) => {
                    let on = iface.map_or("the default interface".to_string(), |i| i.name.clone());
                    return Err(match e.raw_os_error() {
                        Some(nix::libc::ENODEV) if iface.is_none() => {
                            anyhow::anyhow!("cannot join {group}: no default multicast route; pick an interface with --iface")
                        }
                        Some(nix::libc::ENOBUFS) => anyhow::anyhow!(
                            "cannot join {group} on {on}: {e}: this host refuses even one more membership on a new socket (after {} groups: its memory for socket options, net.core.optmem_max, or a kernel limit)",
                            total
                        ),
                        _ => anyhow::anyhow!("cannot join {group} on {on}: {e}"),
                    });
                }
            }
        }
    }
    done.extend(current.map(|(s, _)| UdpSocket::from(s)));
    for s in &done {
        s.set_read_timeout(Some(STOP_TICK))?;
    }
    Ok(done)
}

/// With many groups, a socket per group bound to the group's address (and one on every address
/// for unicast probes, joined to nothing), when the open-file limit allows it (its soft limit is
/// raised towards the hard one, as Go programs do): the kernel finds a datagram's socket by
/// (group, port) then, where sockets sharing the port on every address would each be checked
/// against their memberships for every datagram (measured: with 1000 groups on 50 such sockets
/// per responder, `ip_mc_sf_allow` took 15 % of a lab prober's profile, the receive path running
/// in its softirq; results/groups-cost-2026-12-02.md). `None` when the descriptors do not fit:
/// the caller shares sockets instead.
fn socket_per_group(
    groups: &[IpAddr],
    port: u16,
    iface: Option<&Iface>,
    source: Option<IpAddr>,
    rcvbuf: usize,
) -> Result<Option<Vec<UdpSocket>>> {
    if !raise_open_files(groups.len() as u64 + 1 + 256) {
        return Ok(None);
    }
    let v6 = groups[0].is_ipv6();
    let mut socks = vec![UdpSocket::from(bound_responder_socket(v6, port, rcvbuf)?)];
    for &group in groups {
        let bind = match group {
            IpAddr::V6(g) => SocketAddr::V6(SocketAddrV6::new(g, port, 0, iface.map_or(0, |i| i.index))),
            IpAddr::V4(_) => SocketAddr::new(group, port),
        };
        let sock = match responder_socket_at(v6, bind, rcvbuf) {
            Ok(s) => s,
            Err(e) if out_of_descriptors(&e, groups.len(), socks.len() - 1, socks.len()).is_some() => return Ok(None),
            Err(e) => return Err(e),
        };
        if let Err(e) = join_group(&sock, group, iface, source)? {
            let on = iface.map_or("the default interface".to_string(), |i| i.name.clone());
            return Err(match e.raw_os_error() {
                Some(nix::libc::ENODEV) if iface.is_none() => {
                    anyhow::anyhow!("cannot join {group}: no default multicast route; pick an interface with --iface")
                }
                _ => anyhow::anyhow!("cannot join {group} on {on}: {e} (after {} groups)", socks.len() - 1),
            });
        }
        socks.push(sock.into());
    }
    for s in &socks {
        s.set_read_timeout(Some(STOP_TICK))?;
    }
    Ok(Some(socks))
}

/// Makes room for `needed` open files: true when the soft limit is (or could be raised to) at
/// least that.
fn raise_open_files(needed: u64) -> bool {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return false };
    needed <= soft || (needed <= hard && setrlimit(Resource::RLIMIT_NOFILE, needed, hard).is_ok())
}

/// The error for running out of file descriptors while opening the sockets of `groups` groups
/// (`joined` joined on `sockets` sockets so far): what to raise. `None` for any other error.
fn out_of_descriptors(e: &anyhow::Error, groups: usize, joined: usize, sockets: usize) -> Option<anyhow::Error> {
    let emfile = e
        .chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|io| matches!(io.raw_os_error(), Some(nix::libc::EMFILE) | Some(nix::libc::ENFILE)));
    let per = joined.checked_div(sockets).unwrap_or(0);
    emfile.then(|| {
        anyhow::anyhow!(
            "--groups: {groups} groups need more sockets than this process may open ({sockets} open after {joined} groups, {per} per socket, the kernel's limit: net.ipv4.igmp_max_memberships); raise that sysctl or the open-file limit (ulimit -n)"
        )
    })
}

/// A responder socket bound to `port` on every address, set up to say where each datagram went
/// and with what TTL, joined to nothing yet.
pub(crate) fn bound_responder_socket(v6: bool, port: u16, rcvbuf: usize) -> Result<Socket> {
    let bind: SocketAddr = if v6 {
        SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0).into()
    } else {
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into()
    };
    responder_socket_at(v6, bind, rcvbuf)
}

/// [`bound_responder_socket`] bound to `bind`: every address, or one group's.
fn responder_socket_at(v6: bool, bind: SocketAddr, rcvbuf: usize) -> Result<Socket> {
    let port = bind.port();
    let sock = udp_socket(v6)?;
    sock.set_reuse_address(true).context("cannot set SO_REUSEADDR")?;
    set_rcvbuf(&sock, rcvbuf)?;
    enable_rx_metadata(&sock)?;
    if v6 {
        socket::setsockopt(&sock, sockopt::Ipv6RecvPacketInfo, &true).context("cannot enable IPV6_RECVPKTINFO")?;
        socket::setsockopt(&sock, sockopt::Ipv6RecvHopLimit, &true).context("cannot enable IPV6_RECVHOPLIMIT")?;
        sock.set_multicast_all_v6(false).context("cannot clear IPV6_MULTICAST_ALL")?;
    } else {
        socket::setsockopt(&sock, sockopt::Ipv4PacketInfo, &true).context("cannot enable IP_PKTINFO")?;
        socket::setsockopt(&sock, sockopt::Ipv4RecvTtl, &true).context("cannot enable IP_RECVTTL")?;
        sock.set_multicast_all_v4(false).context("cannot clear IP_MULTICAST_ALL")?;
    }
    sock.bind(&bind.into()).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => anyhow::anyhow!("--port {port}: in use by a program that does not share it"),
        io::ErrorKind::PermissionDenied => {
            anyhow::anyhow!("--port {port}: permission denied (ports below 1024 need root)")
        }
        _ => anyhow::anyhow!("--port {port}: cannot bind: {e}"),
    })?;
    Ok(sock)
}

/// Joins `group` on `sock` (source-specifically with `source`). The outer error is the user's
/// (a family mismatch, an IPv6 group without an interface); the inner one the kernel's refusal.
pub(crate) fn join_group(
    sock: &Socket,
    group: IpAddr,
    iface: Option<&Iface>,
    source: Option<IpAddr>,
) -> Result<io::Result<()>> {
    Ok(match (group, source) {
        (IpAddr::V4(g), None) => {
            let via = match iface {
                Some(i) => InterfaceIndexOrAddress::Index(i.index),
                None => InterfaceIndexOrAddress::Address(Ipv4Addr::UNSPECIFIED),
            };
            sock.join_multicast_v4_n(&g, &via)
        }
        (IpAddr::V4(g), Some(IpAddr::V4(s))) => {
            let via = iface.map(Iface::v4).transpose()?.unwrap_or(Ipv4Addr::UNSPECIFIED);
            sock.join_ssm_v4(&s, &g, &via)
        }
        (IpAddr::V6(g), None) => sock.join_multicast_v6(&g, need_v6_iface(iface, g)?.index),
        (IpAddr::V6(g), Some(IpAddr::V6(s))) => source_filter::join_ssm_v6(sock, g, s, need_v6_iface(iface, g)?.index),
        (g, Some(s)) => bail!("--source {s}: not of the same family as --group {g}"),
    })
}

/// Which of several sockets have datagrams waiting: an epoll set made once, so a wait costs the
/// same with 50 sockets as with one (poll(2) walks every descriptor on every call).
pub(crate) struct ReadySet {
    epoll: nix::sys::epoll::Epoll,
    events: Vec<nix::sys::epoll::EpollEvent>,
}

impl ReadySet {
    pub(crate) fn new(socks: &[UdpSocket]) -> Result<Self> {
        use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("cannot create an epoll instance")?;
        for (i, s) in socks.iter().enumerate() {
            epoll.add(s, EpollEvent::new(EpollFlags::EPOLLIN, i as u64)).context("cannot add a socket to epoll")?;
        }
        Ok(ReadySet { epoll, events: vec![EpollEvent::empty(); socks.len().clamp(1, 256)] })
    }

    /// Waits up to `wait` (the caller's next deadline) for any socket to be readable and puts
    /// their indexes in `ready` (none when the wait ran out).
    pub(crate) fn wait(&mut self, ready: &mut Vec<usize>, wait: Duration) -> Result<()> {
        let tick = nix::sys::epoll::EpollTimeout::from(wait_ms(wait));
        let n = match self.epoll.wait(&mut self.events, tick) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(anyhow::anyhow!("cannot wait for the group sockets: {e}")),
        };
        ready.extend(self.events[..n].iter().map(|e| e.data() as usize));
        Ok(())
    }
}

/// A stable 64-bit key for a source address: identity for plain (`--plain`) peers, whose
/// datagrams carry none of their own.
pub(crate) fn source_key(addr: &SocketAddr) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    addr.hash(&mut h);
    h.finish()
}

/// A socket bound to `addr` on an ephemeral port, for a responder that replies from a chosen
/// source address (the loopback demo gives each responder its own 127.0.0.x).
pub(crate) fn reply_socket(addr: Ipv4Addr) -> Result<UdpSocket> {
    UdpSocket::bind((addr, 0)).with_context(|| format!("cannot bind a reply socket to {addr}"))
}

/// One received datagram and what the kernel said about it.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub len: usize,
    pub from: SocketAddr,
    /// Kernel receive time, ns since the epoch; the read time if the kernel gave none.
    pub rx_ns: u64,
    /// IP TTL (IPv6 hop limit) as received; 0 when not asked for.
    pub ttl: u8,
    /// Destination address (only with IP_PKTINFO / IPV6_RECVPKTINFO): tells multicast from
    /// unicast arrival.
    pub dst: Option<IpAddr>,
    /// Datagrams the kernel has dropped on this socket so far for lack of buffer space.
    pub local_drops: Option<u32>,
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6(SocketAddrV6::new(v6.ip(), v6.port(), v6.flowinfo(), v6.scope_id())))
}

/// Receives one datagram with its ancillary data. `Ok(None)` when the read timed out.
pub fn recv(sock: &UdpSocket, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Option<Received>> {
    recv_flags(sock, buf, cmsg, MsgFlags::empty())
}

/// [`recv`] with flags (`MSG_DONTWAIT`): `Ok(None)` when nothing is queued.
pub(crate) fn recv_flags(
    sock: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut [u8],
    flags: MsgFlags,
) -> io::Result<Option<Received>> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = match socket::recvmsg::<SockaddrStorage>(sock.as_raw_fd(), &mut iov, Some(cmsg), flags) {
        Ok(m) => m,
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let from = msg.address.as_ref().filter(|a| a.len() > 0).and_then(socket_addr);
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
                ControlMessageOwned::Ipv4Ttl(ttl) | ControlMessageOwned::Ipv6HopLimit(ttl) => {
                    out.ttl = ttl.clamp(0, 255) as u8
                }
                ControlMessageOwned::RxqOvfl(n) => out.local_drops = Some(n),
                ControlMessageOwned::Ipv4PacketInfo(info) => {
                    out.dst = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr))));
                }
                ControlMessageOwned::Ipv6PacketInfo(info) => {
                    out.dst = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
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
    nix::cmsg_space!(TimeSpec, nix::libc::in6_pktinfo, nix::libc::c_int, u32)
}

fn timespec_ns(ts: &TimeSpec) -> u64 {
    (ts.tv_sec() as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec() as u64)
}

/// Wall-clock time in ns since the epoch: the clock kernel receive timestamps use.
pub(crate) fn now_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME).expect("CLOCK_REALTIME is always available");
    timespec_ns(&ts)
}

/// The wall-clock time in ns since the epoch, and its shift: how far the wall clock has moved
/// against the monotonic clock since this process first asked, in ns (0 until it steps or
/// slews). Stamped on a send and on an arrival, the shifts let a run measure across a step as if
/// there were none (`stats::step_between`). Both come from one reading of CLOCK_REALTIME: a time
/// read apart from its shift could fall before a step and the shift after it, and an RTT
/// measured across it would be off by the whole step (seen under load in
/// tests/it/clock_step.rs: an ack 30 s late, or one lost).
pub(crate) fn wall_now() -> (u64, i64) {
    static START: std::sync::OnceLock<i128> = std::sync::OnceLock::new();
    let real =
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME).expect("CLOCK_REALTIME is always available");
    let offset = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |mono| i128::from(timespec_ns(&real)) - i128::from(timespec_ns(&mono)));
    let start = *START.get_or_init(|| offset);
    let shift = (offset - start).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    (timespec_ns(&real), shift)
}

/// Lowers this thread's timer slack to 1 ns, so sleeps end within tens of µs of their deadline
/// instead of the default 50 µs slack plus scheduling delay.
pub(crate) fn lower_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(1);
}

/// SCHED_FIFO priority of `--realtime`: above every normal process, below the kernel's own
/// threaded interrupts (50 is their default too, and they come first by age) and watchdogs (99).
const REALTIME_PRIORITY: i32 = 50;

/// Puts the calling thread (and every thread it starts afterwards) under SCHED_FIFO and locks
/// the process's memory, so neither other processes nor page faults delay the probes. Both or
/// an error saying which step failed and why (no privilege, typically); memory is left unlocked
/// when the scheduler change failed.
pub(crate) fn realtime() -> std::result::Result<(), String> {
    use nix::libc;
    let param = libc::sched_param { sched_priority: REALTIME_PRIORITY };
    // SAFETY: plain system calls with a valid, initialised argument; 0 means the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        return Err(format!("cannot use SCHED_FIFO ({})", std::io::Error::last_os_error()));
    }
    // SAFETY: as above; no pointers.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        return Err(format!("SCHED_FIFO on, but cannot lock memory ({})", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Whether the calling thread runs under SCHED_FIFO (set by [`realtime`] before it started).
pub(crate) fn is_realtime() -> bool {
    // SAFETY: a plain system call without arguments beyond the thread (0: the calling one).
    unsafe { nix::libc::sched_getscheduler(0) == nix::libc::SCHED_FIFO }
}

/// Receive buffer the engines ask for by default: enough for ~4 k acks of a burst.
pub(crate) const DEFAULT_RCVBUF: usize = 4 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer above net.core.rmem_max: root gets the size asked, anyone else the cap.
    #[test]
    fn root_gets_the_receive_buffer_asked_past_rmem_max() {
        let max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap().trim().parse().unwrap();
        let asked = (max * 2).max(8 << 20);
        let sock = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        set_rcvbuf(&sock, asked).unwrap();
        let granted = sock.recv_buffer_size().unwrap() / 2;
        if nix::unistd::geteuid().is_root() {
            assert!(granted >= asked, "asked {asked}, granted {granted}");
        } else {
            assert!(granted <= max, "asked {asked}, granted {granted} past rmem_max {max}");
        }
    }

    #[test]
    fn loopback_resolves_by_name_and_address() {
        let by_name = resolve_iface("lo").unwrap();
        assert_eq!(by_name.addr, Some(Ipv4Addr::LOCALHOST));
        assert!(by_name.index > 0);
        assert_eq!(by_name.given, None);
        let by_addr = resolve_iface("127.0.0.1").unwrap();
        assert_eq!(by_addr, Iface { given: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), ..by_name.clone() });
        // lo's IPv6 address, when the host has IPv6 at all.
        assert!(by_name.addr6.is_none_or(|a| a == Ipv6Addr::LOCALHOST), "{by_name:?}");
    }

    #[test]
    fn iface_of_the_other_family_is_named() {
        let lo = resolve_iface("127.0.0.1").unwrap();
        let e = lo.check_family("ff12::1".parse().unwrap()).unwrap_err().to_string();
        assert!(e.contains("--iface 127.0.0.1") && e.contains("IPv4 address") && e.contains("--group ff12::1"), "{e}");
        assert!(lo.check_family("239.1.2.3".parse().unwrap()).is_ok());
        // Given by name, the family is picked from the group.
        let lo = resolve_iface("lo").unwrap();
        assert!(lo.check_family("ff12::1".parse().unwrap()).is_ok());
        assert_eq!(lo.source_for("239.1.2.3".parse().unwrap()), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn local_addresses_include_loopback() {
        assert!(local_addrs().unwrap().contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn bad_interfaces_and_groups_are_named_in_errors() {
        let e = resolve_iface("nosuch0").unwrap_err().to_string();
        assert!(e.contains("--iface nosuch0") && e.contains("no such interface"), "{e}");
        let e = resolve_iface("10.77.0.251").unwrap_err().to_string();
        assert!(e.contains("no local interface has this address"), "{e}");
        let e = check_group("10.1.2.3".parse().unwrap()).unwrap_err().to_string();
        assert!(e.contains("--group 10.1.2.3") && e.contains("not a multicast"), "{e}");
        assert!(check_group("239.1.2.3".parse().unwrap()).is_ok());
        assert!(check_group("ff12::4242".parse().unwrap()).is_ok());
        assert!(check_group("ff02::1:3".parse().unwrap()).is_ok());
        assert!(check_group("ff32::8000:4242".parse().unwrap()).is_ok());
        let e = check_group("ff7e::8000:1".parse().unwrap()).unwrap_err().to_string();
        assert!(e.contains("ff0X") && e.contains("ff1X"), "{e}");
        let e = check_group("fd00::1".parse().unwrap()).unwrap_err().to_string();
        assert!(e.contains("not a multicast address"), "{e}");
    }
}
