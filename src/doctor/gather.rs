//! Reads this host into [`Facts`]: the only part of the doctor that touches the system. Each
//! reading that fails becomes a fact ("cannot read …"), never an error: the checks say what
//! they could not tell.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use nix::net::if_::InterfaceFlags;

use super::firewall::{Family, Ruleset, Tool};
use super::{iptables, nft, Bound, ClockFacts, Facts, IfaceFacts, PeerFacts, QuerierFacts, Setup};
use crate::net::{self, route};
use crate::querier::watch::QuerierWatch;

fn sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{path}")).ok().map(|s| s.trim().to_string())
}

fn iface_facts(name: &str) -> Option<IfaceFacts> {
    let addrs: Vec<_> = nix::ifaddrs::getifaddrs().ok()?.filter(|a| a.interface_name == name).collect();
    let flags = addrs.first()?.flags;
    let nets = addrs
        .iter()
        .filter_map(|a| {
            let ip = a.address.as_ref().and_then(|s| {
                s.as_sockaddr_in()
                    .map(|v| IpAddr::V4(v.ip()))
                    .or_else(|| s.as_sockaddr_in6().map(|v| IpAddr::V6(v.ip())))
            })?;
            let mask = a.netmask.as_ref().and_then(|s| {
                s.as_sockaddr_in()
                    .map(|v| IpAddr::V4(v.ip()))
                    .or_else(|| s.as_sockaddr_in6().map(|v| IpAddr::V6(v.ip())))
            });
            let len =
                mask.and_then(|m| ipnet::ip_mask_to_prefix(m).ok()).unwrap_or(if ip.is_ipv6() { 128 } else { 32 });
            IpNet::new(ip, len).ok()
        })
        .collect();
    Some(IfaceFacts {
        name: name.to_string(),
        up: flags.contains(InterfaceFlags::IFF_UP),
        running: flags.contains(InterfaceFlags::IFF_RUNNING),
        multicast: flags.contains(InterfaceFlags::IFF_MULTICAST),
        loopback: flags.contains(InterfaceFlags::IFF_LOOPBACK),
        addrs: nets,
    })
}

/// The peers to check: the given ones, else one address of each IPv4 subnet of the interface.
fn peers(s: &Setup, i: &IfaceFacts) -> Vec<(IpAddr, bool)> {
    if !s.peers.is_empty() {
        return s.peers.iter().map(|&p| (p, true)).collect();
    }
    let mine: Vec<IpAddr> = i.addrs.iter().map(IpNet::addr).collect();
    i.addrs
        .iter()
        .filter_map(|n| match n {
            IpNet::V4(v4) if v4.prefix_len() <= 30 => {
                let base = u32::from(v4.network());
                (1..4).map(|k| IpAddr::V4(Ipv4Addr::from(base + k))).find(|a| !mine.contains(a))
            }
            _ => None,
        })
        .map(|a| (a, false))
        .collect()
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// nftables, with the tables iptables-nft manages read from `iptables-nft-save` instead (its
/// matches are opaque `xt` expressions in nft's JSON), and iptables-legacy's tables when they
/// have rules.
fn firewall() -> Result<(Ruleset, Vec<String>), String> {
    let mut rules = Ruleset::default();
    let mut read = Vec::new();
    let nft_err = match (run("nft", &["-j", "list", "ruleset"]), run("nft", &["-a", "list", "ruleset"])) {
        (Ok(json), Ok(text)) => {
            rules.chains.extend(nft::parse(&json, &nft::rule_texts(&text))?.chains);
            read.push("nft -j list ruleset".to_string());
            None
        }
        (Err(e), _) | (_, Err(e)) => Some(e),
    };
    let has_rules =
        |dump: &str| dump.lines().any(|l| l.starts_with("-A ") || (l.starts_with(':') && l.contains(" DROP ")));
    for (cmd, v6) in [("iptables-nft-save", false), ("ip6tables-nft-save", true)] {
        let Ok(dump) = run(cmd, &[]) else { continue };
        if !has_rules(&dump) {
            continue;
        }
        let parsed = iptables::parse(&dump, v6);
        let family = if v6 { Family::Ip6 } else { Family::Ip };
        let tables: Vec<String> = parsed.chains.iter().map(|c| c.table.clone()).collect();
        rules.chains.retain(|c| !(c.tool == Tool::Nftables && c.family == family && tables.contains(&c.table)));
        rules.chains.extend(parsed.chains);
        read.push(cmd.to_string());
    }
    for (cmd, v6) in [("iptables-legacy-save", false), ("ip6tables-legacy-save", true)] {
        if let Ok(dump) = run(cmd, &[]) {
            if has_rules(&dump) {
                rules.chains.extend(iptables::parse(&dump, v6).chains);
                read.push(cmd.to_string());
            }
        }
    }
    match (read.is_empty(), nft_err) {
        (true, Some(e)) => Err(e),
        _ => Ok((rules, read)),
    }
}

/// Sockets bound to UDP `port`, from /proc/net/udp{,6}, with their owners when visible.
fn bound(port: u16) -> Vec<Bound> {
    let mut found: Vec<(SocketAddr, u64)> = Vec::new();
    for (file, v6) in [("/proc/net/udp", false), ("/proc/net/udp6", true)] {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (cols.get(1), cols.get(9)) else { continue };
            let Some((addr, p)) = local.split_once(':') else { continue };
            if u16::from_str_radix(p, 16).ok() != Some(port) {
                continue;
            }
            let ip = if v6 {
                let mut b = [0u8; 16];
                for (k, chunk) in b.chunks_mut(4).enumerate() {
                    let w = u32::from_str_radix(addr.get(8 * k..8 * k + 8).unwrap_or("0"), 16).unwrap_or(0);
                    chunk.copy_from_slice(&w.to_ne_bytes());
                }
                IpAddr::V6(b.into())
            } else {
                IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(addr, 16).unwrap_or(0).to_ne_bytes()))
            };
            found.push((SocketAddr::new(ip, port), inode.parse().unwrap_or(0)));
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    let owners = socket_owners(&found.iter().map(|(_, i)| *i).collect::<Vec<_>>());
    found.into_iter().map(|(local, inode)| Bound { local, owner: owners.get(&inode).cloned() }).collect()
}

/// The processes holding these socket inodes (as far as /proc lets this user see).
fn socket_owners(inodes: &[u64]) -> HashMap<u64, (String, u32)> {
    let mut out = HashMap::new();
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let t = target.to_string_lossy();
            let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')).and_then(|s| s.parse().ok())
            else {
                continue;
            };
            if inodes.contains(&inode) {
                let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default().trim().to_string();
                out.insert(inode, (comm, pid));
            }
        }
    }
    out
}

/// The group the querier check joins and leaves (IPv4, IPv6): one of its own in the
/// site-local scope, so that a responder of this host, joined to --group, does not keep the
/// membership up and swallow the leave.
const SCRATCH: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(239, 255, 42, 99)),
    IpAddr::V6(std::net::Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0, 0x4299)),
];

/// Listens for a querier for up to `wait`, after a leave of a group of its own on the
/// interface (a querier answers a leave with a group-specific query).
fn querier(s: &Setup, i: &IfaceFacts, index: u32) -> QuerierFacts {
    if i.loopback {
        return QuerierFacts::Loopback;
    }
    let iface = net::Iface { name: i.name.clone(), index, addr: None, addr6: None, given: None, by_route: false };
    let watch = match QuerierWatch::start(Some(&iface), s.group.is_ipv6(), None, None) {
        Ok(w) => w,
        Err(u) => return QuerierFacts::NotWatched(u.0),
    };
    let _member = join_leave_join(SCRATCH[usize::from(s.group.is_ipv6())], index);
    let start = Instant::now();
    while start.elapsed() < s.querier_wait {
        std::thread::sleep(Duration::from_millis(100));
        if !watch.observation().log.queriers.is_empty() {
            break;
        }
    }
    let heard: Vec<(IpAddr, String)> =
        watch.finish().log.queriers.iter().map(|q| (q.address, q.version.as_str().to_string())).collect();
    if heard.is_empty() {
        QuerierFacts::Silent(s.querier_wait)
    } else {
        QuerierFacts::Heard(heard)
    }
}

/// Joins `group` on interface `index`, leaves it and joins it again at once: the kernel sends a
/// report, a leave and a report, and a querier answers the leave with a query to the group,
/// which this host then takes (it is a member again). Best effort: a failure only means no
/// prompt query. The socket is returned to keep the membership while listening.
fn join_leave_join(group: IpAddr, index: u32) -> Option<UdpSocket> {
    let join = |sock: &socket2::Socket| match group {
        IpAddr::V4(g) => sock.join_multicast_v4_n(&g, &socket2::InterfaceIndexOrAddress::Index(index)).is_ok(),
        IpAddr::V6(g) => sock.join_multicast_v6(&g, index).is_ok(),
    };
    let first = net::udp_socket(group.is_ipv6()).ok()?;
    if !join(&first) {
        return None;
    }
    std::thread::sleep(Duration::from_millis(100));
    drop(first);
    // Long enough for the leave to go out (a quicker join cancels it), short enough to be a
    // member again before the querier's next query to the group (a second of last-member
    // interval, by default).
    std::thread::sleep(Duration::from_millis(100));
    let again = net::udp_socket(group.is_ipv6()).ok()?;
    join(&again).then(|| again.into())
}

fn clock() -> Option<ClockFacts> {
    // SAFETY: timex is plain old data; modes 0 only reads the kernel's state.
    let mut t: nix::libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid timex.
    let state = unsafe { nix::libc::adjtimex(&mut t) };
    if state < 0 {
        return None;
    }
    let unsync = t.status & nix::libc::STA_UNSYNC != 0 || state == nix::libc::TIME_ERROR;
    Some(ClockFacts { synced: !unsync, maxerror_us: t.maxerror })
}

/// Reads everything the checks need about `s.iface` (already resolved to a name).
pub(crate) fn gather(s: &Setup, index: u32) -> Facts {
    let iface = iface_facts(&s.iface);
    let local = iface.as_ref().and_then(|i| i.addrs.iter().map(IpNet::addr).find(|a| a.is_ipv6() == s.group.is_ipv6()));
    let peers = match (&iface, local) {
        // On loopback there is no path to filter: the peer is only for the firewall's packets.
        (Some(i), _) if i.loopback => peers(s, i)
            .into_iter()
            .map(|(addr, given)| PeerFacts { addr, given, accepted: Ok(()), back_via: None })
            .collect(),
        (Some(i), Some(local)) if !s.group.is_ipv6() => peers(s, i)
            .into_iter()
            .filter(|(p, _)| p.is_ipv4() && *p != local)
            .map(|(addr, given)| PeerFacts {
                addr,
                given,
                accepted: route::input_route(local, addr, &s.iface).map(|_| ()),
                back_via: route::route_get(addr).ok().map(|r| r.dev),
            })
            .collect(),
        (Some(i), _) => peers(s, i)
            .into_iter()
            .map(|(addr, given)| PeerFacts { addr, given, accepted: Ok(()), back_via: None })
            .collect(),
        _ => Vec::new(),
    };
    let range = sysctl("net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut nums = range.split_whitespace().filter_map(|n| n.parse::<u16>().ok());
    let ephemeral = (nums.next().unwrap_or(32768), nums.next().unwrap_or(60999));
    Facts {
        group_route: route::route_get(s.group),
        rp_filter: route::rp_filter(&s.iface),
        peers,
        firewall: firewall(),
        ephemeral,
        igmp_max_memberships: sysctl("net/ipv4/igmp_max_memberships").and_then(|v| v.parse().ok()),
        group_port_bound: if s.role.responds() { bound(s.port) } else { Vec::new() },
        ack_port_bound: s.ack_port.filter(|_| s.role.probes()).map(bound).unwrap_or_default(),
        querier: iface.as_ref().map_or(QuerierFacts::Loopback, |i| querier(s, i, index)),
        clock: clock(),
        iface,
    }
}
