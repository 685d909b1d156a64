//! A source-specific IPv6 join (RFC 3678's `MCAST_JOIN_SOURCE_GROUP`), which neither socket2 nor
//! nix wraps: one `setsockopt` call, and the `unsafe` blocks that build its argument. IPv4
//! source-specific joins go through socket2's `join_ssm_v4`. The crate's other `unsafe` code is
//! in `net::batch` (recvmmsg), `net::tap` (packet sockets) and `doctor::gather`; each block
//! says why it is sound.

use std::io;
use std::mem;
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;

use nix::libc;

fn storage_v6(addr: Ipv6Addr) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (unspecified) value, and a
    // sockaddr_in6 fits inside it by definition (it is sized and aligned for every family).
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let sin6 = libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: 0,
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr { s6_addr: addr.octets() },
        sin6_scope_id: 0,
    };
    // SAFETY: see above; the write stays inside `storage`.
    unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
    storage
}

/// Joins `group` on interface `index`, accepting only datagrams from `source`.
pub(crate) fn join_ssm_v6(sock: &impl AsRawFd, group: Ipv6Addr, source: Ipv6Addr, index: u32) -> io::Result<()> {
    let req =
        libc::group_source_req { gsr_interface: index, gsr_group: storage_v6(group), gsr_source: storage_v6(source) };
    // SAFETY: `req` is a fully initialized group_source_req that outlives the call, and the length
    // passed is its exact size, as setsockopt(2) requires.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::MCAST_JOIN_SOURCE_GROUP,
            &req as *const _ as *const libc::c_void,
            mem::size_of::<libc::group_source_req>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
