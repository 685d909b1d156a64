//! Batched datagram I/O: `recvmmsg` takes every datagram already queued (up to [`BATCH`]) in one
//! system call, `sendmmsg` sends a batch's replies in one. At high probe rates the responder
//! spent most of its time entering and leaving the kernel, one datagram at a time: this is what
//! lets it keep up (see results/compare-*-batch.md).
//!
//! Each datagram keeps its own metadata from its own control buffer: kernel receive timestamp,
//! arrival TTL, destination address and the kernel's drop count, as [`super::recv`] gives them.
//!
//! Why not nix's `recvmmsg`: its `MultiHeaders` does not restore `msg_controllen` between calls
//! (nix-rust/nix#2813), and the kernel adds the SO_RXQ_OVFL message only once a drop has
//! happened, so from the first drop on every datagram would come back with its control data
//! truncated: no kernel timestamp exactly when the socket is under load. Here every header is
//! rebuilt, with full capacities, before every call.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::ptr;

use nix::libc;
use nix::sys::socket::{SockaddrLike, SockaddrStorage};
use socket2::SockAddr;

use super::{now_ns, socket_addr, Received};

/// Datagrams per system call: at 200 000 probes/s a 20 µs wake-up finds ~4 queued, a 1 ms
/// vCPU stall ~200; 64 drains the usual backlog in a few calls and keeps the buffers at a few
/// tens of KiB.
pub(crate) const BATCH: usize = 64;

/// Room for every control message the sockets ask for, in u64 words (cmsghdr's alignment):
/// timestamp, TTL, packet info (the IPv6 one is the larger) and the drop count.
const CMSG_WORDS: usize = 16;

/// Receives up to [`BATCH`] datagrams per call, each with its own metadata.
pub(crate) struct RecvBatch {
    /// Bytes per datagram slot: a datagram longer than this is cut (as [`super::recv`] cuts it
    /// to its buffer), so give one byte more than the largest valid datagram.
    slot: usize,
    bufs: Vec<u8>,
    cmsgs: Vec<u64>,
    names: Vec<libc::sockaddr_storage>,
    got: Vec<Received>,
}

impl RecvBatch {
    pub(crate) fn new(slot: usize) -> Self {
        RecvBatch {
            slot,
            bufs: vec![0; slot * BATCH],
            cmsgs: vec![0; CMSG_WORDS * BATCH],
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            names: vec![unsafe { mem::zeroed() }; BATCH],
            got: Vec::with_capacity(BATCH),
        }
    }

    /// Waits for the first datagram as a plain read does (up to the socket's read timeout, or
    /// not at all on a non-blocking socket), then takes those already queued without waiting
    /// more (MSG_WAITFORONE). Returns how many arrived; 0 when the wait timed out.
    pub(crate) fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.recv_flags(sock, 0)
    }

    /// As [`recv`](Self::recv), with `flags` added (`MSG_DONTWAIT`: take what is queued, never
    /// wait).
    pub(crate) fn recv_flags(&mut self, sock: &UdpSocket, flags: libc::c_int) -> io::Result<usize> {
        self.got.clear();
        // SAFETY: iovec and mmsghdr are plain old data; all-zero is valid (null pointers, zero
        // lengths), and every field the kernel reads is set below.
        let mut iovs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        let bufs = self.bufs.as_mut_ptr();
        let cmsgs = self.cmsgs.as_mut_ptr();
        for (i, (iov, hdr)) in iovs.iter_mut().zip(hdrs.iter_mut()).enumerate() {
            // SAFETY: slot i of `bufs` and of `cmsgs` lies inside their allocations (sized
            // BATCH slots above), and the slots do not overlap.
            *iov = libc::iovec { iov_base: unsafe { bufs.add(i * self.slot) }.cast(), iov_len: self.slot };
            let h = &mut hdr.msg_hdr;
            h.msg_name = ptr::from_mut(&mut self.names[i]).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            h.msg_control = unsafe { cmsgs.add(i * CMSG_WORDS) }.cast();
            h.msg_controllen = (CMSG_WORDS * mem::size_of::<u64>()) as _;
        }
        // SAFETY: every header points at buffers owned by `self` (or by `iovs` on this stack
        // frame) with the lengths given, all of which outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as _,
                (libc::MSG_WAITFORONE | flags) as _,
                ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        for (i, hdr) in hdrs.iter().take(n as usize).enumerate() {
            let rx = self.parse(i, hdr);
            self.got.push(rx);
        }
        Ok(self.got.len())
    }

    /// Datagram `i` of the last [`recv`](Self::recv): its bytes and what the kernel said.
    pub(crate) fn get(&self, i: usize) -> (&[u8], Received) {
        let rx = self.got[i];
        let start = i * self.slot;
        (&self.bufs[start..start + rx.len.min(self.slot)], rx)
    }

    fn parse(&self, i: usize, hdr: &libc::mmsghdr) -> Received {
        let h = &hdr.msg_hdr;
        // SAFETY: the kernel wrote `msg_namelen` bytes of a socket address into names[i], which
        // is a sockaddr_storage (large enough for any family).
        let from = unsafe { SockaddrStorage::from_raw(ptr::from_ref(&self.names[i]).cast(), Some(h.msg_namelen)) };
        let from = from.filter(|a| a.len() > 0).as_ref().and_then(socket_addr);
        let mut rx = Received {
            len: hdr.msg_len as usize,
            from: from.unwrap_or(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))),
            rx_ns: 0,
            ttl: 0,
            dst: None,
            local_drops: None,
        };
        // Truncated control data cannot be walked safely (nix refuses it the same way).
        if h.msg_flags & libc::MSG_CTRUNC == 0 {
            // SAFETY: the kernel filled `msg_controllen` bytes of control messages into the
            // buffer `msg_control` points at; CMSG_FIRSTHDR/CMSG_NXTHDR stay inside it.
            let mut c = unsafe { libc::CMSG_FIRSTHDR(h) };
            while !c.is_null() {
                // SAFETY: `c` is a valid header inside the control buffer (see above).
                unsafe { read_cmsg(&*c, &mut rx) };
                c = unsafe { libc::CMSG_NXTHDR(h, c) };
            }
        }
        if rx.rx_ns == 0 {
            rx.rx_ns = now_ns();
        }
        rx
    }
}

/// Reads one control message into `rx`; one of a size other than its type's is skipped.
///
/// # Safety
/// `c` must be a control message header the kernel wrote, followed by its `cmsg_len` bytes.
unsafe fn read_cmsg(c: &libc::cmsghdr, rx: &mut Received) {
    // cmsg_len is usize with glibc, u32 with musl.
    #[allow(clippy::unnecessary_cast)]
    unsafe fn data<T>(c: &libc::cmsghdr) -> Option<T> {
        let want = unsafe { libc::CMSG_LEN(mem::size_of::<T>() as _) } as usize;
        // SAFETY (caller's): the data follows the header; read_unaligned as it may be packed.
        (c.cmsg_len as usize >= want).then(|| unsafe { ptr::read_unaligned(libc::CMSG_DATA(c).cast::<T>()) })
    }
    unsafe {
        match (c.cmsg_level, c.cmsg_type) {
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                if let Some(ts) = data::<libc::timespec>(c) {
                    rx.rx_ns = (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64);
                }
            }
            (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => rx.local_drops = data::<u32>(c).or(rx.local_drops),
            (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                if let Some(ttl) = data::<libc::c_int>(c) {
                    rx.ttl = ttl.clamp(0, 255) as u8;
                }
            }
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                if let Some(info) = data::<libc::in_pktinfo>(c) {
                    rx.dst = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr))));
                }
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                if let Some(info) = data::<libc::in6_pktinfo>(c) {
                    rx.dst = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                }
            }
            _ => {}
        }
    }
}

/// UDP_SEGMENT from linux/udp.h (Linux 4.18): not in the libc crate for glibc targets.
const UDP_SEGMENT: libc::c_int = 103;
/// At most this many datagrams in one segmented send: the kernel's UDP_MAX_SEGMENTS was 64
/// before Linux 6.8 (128 since).
const GSO_MAX_SEGS: usize = 64;
/// At most this many payload bytes in one segmented send: one IP datagram's worth, with room
/// for the headers.
const GSO_MAX_BYTES: usize = 65_000;
/// Control buffer of one segmented send, in u64 words: CMSG_SPACE(sizeof(u16)) is 24 bytes.
const GSO_CMSG_WORDS: usize = 4;

/// Datagrams queued during a batch, sent together with one `sendmmsg`.
///
/// Made by [`SendBatch::new`], consecutive datagrams to one destination of one size also go as
/// one UDP_SEGMENT send (UDP GSO): the kernel walks its stack once for the lot and cuts them
/// into the same separate datagrams just before the device (or the receiving socket); on a
/// path where the kernel refuses segmentation (a device without checksum offload) it is
/// switched off and they go one by one. Probes never use it, acks only with `respond
/// --ack-trains` (else [`SendBatch::unsegmented`]): before a physical NIC cuts it, a train is
/// one packet to a software bridge, a virtual NIC, nftables or netem, dropped, policed and
/// counted as one.
pub(crate) struct SendBatch {
    slot: usize,
    bufs: Vec<u8>,
    lens: Vec<usize>,
    to: Vec<SocketAddr>,
    dests: Vec<SockAddr>,
    segment: bool,
}

impl SendBatch {
    /// `slot`: the largest datagram it will be asked to send.
    pub(crate) fn new(slot: usize) -> Self {
        SendBatch {
            slot,
            bufs: vec![0; slot * BATCH],
            lens: Vec::with_capacity(BATCH),
            to: Vec::with_capacity(BATCH),
            dests: Vec::with_capacity(BATCH),
            segment: true,
        }
    }

    /// As [`SendBatch::new`], never segmented: every datagram leaves as its own packet, for
    /// probes and acks, which must meet the network one by one (a segmented batch crosses a
    /// software bridge or a virtual NIC as one packet, to be dropped, policed and counted as one).
    pub(crate) fn unsegmented(slot: usize) -> Self {
        SendBatch { segment: false, ..SendBatch::new(slot) }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Whether replies are still sent segmented (false once the kernel refused it).
    #[cfg(test)]
    pub(crate) fn segmenting(&self) -> bool {
        self.segment
    }

    /// Queues `bytes` for `to`. False (nothing queued) when the batch is full or `bytes` is
    /// longer than a slot: the caller sends it alone.
    pub(crate) fn push(&mut self, bytes: &[u8], to: SocketAddr) -> bool {
        let i = self.lens.len();
        if i == BATCH || bytes.len() > self.slot {
            return false;
        }
        self.bufs[i * self.slot..i * self.slot + bytes.len()].copy_from_slice(bytes);
        self.lens.push(bytes.len());
        self.to.push(to);
        self.dests.push(SockAddr::from(to));
        true
    }

    /// Sends everything queued and empties the batch. Returns (sent, failed): a datagram the
    /// kernel refuses is counted failed and the rest are still sent.
    pub(crate) fn flush(&mut self, sock: &UdpSocket) -> (usize, usize) {
        let n = self.lens.len();
        // Groups (first datagram, count): consecutive datagrams to one destination, of one size.
        let mut groups = [(0usize, 0usize); BATCH];
        let (mut ng, mut i) = (0, 0);
        while i < n {
            let mut j = i + 1;
            while self.segment
                && j < n
                && j - i < GSO_MAX_SEGS
                && self.to[j] == self.to[i]
                && self.lens[j] == self.lens[i]
                && (j - i + 1) * self.lens[i] <= GSO_MAX_BYTES
            {
                j += 1;
            }
            groups[ng] = (i, j - i);
            ng += 1;
            i = j;
        }
        // SAFETY: plain old data, all-zero is valid; the fields the kernel reads are set below.
        let mut iovs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        let mut ctl = [[0u64; GSO_CMSG_WORDS]; BATCH];
        let bufs = self.bufs.as_mut_ptr();
        for (i, iov) in iovs.iter_mut().enumerate().take(n) {
            // SAFETY: slot i lies inside `bufs` (BATCH slots) and holds lens[i] ≤ slot bytes.
            *iov = libc::iovec { iov_base: unsafe { bufs.add(i * self.slot) }.cast(), iov_len: self.lens[i] };
        }
        for ((hdr, &(first, count)), ctl) in hdrs.iter_mut().zip(&groups[..ng]).zip(ctl.iter_mut()) {
            let h = &mut hdr.msg_hdr;
            h.msg_name = self.dests[first].as_ptr().cast_mut().cast();
            h.msg_namelen = self.dests[first].len();
            h.msg_iov = &mut iovs[first];
            h.msg_iovlen = count as _;
            if count > 1 {
                h.msg_control = ctl.as_mut_ptr().cast();
                // SAFETY: CMSG_SPACE(2) is 24 bytes on every Linux target, within `ctl`.
                h.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as _;
                // SAFETY: the control buffer is set and large enough for one u16 message.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                    ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), self.lens[first] as u16);
                }
            }
        }
        let (mut sent, mut failed, mut at) = (0, 0, 0);
        while at < ng {
            // SAFETY: headers at..ng point at buffers, addresses and control data owned by
            // `self` or this frame, all outliving the call.
            let rc = unsafe { libc::sendmmsg(sock.as_raw_fd(), hdrs[at..].as_mut_ptr(), (ng - at) as _, 0) };
            if rc > 0 {
                sent += groups[at..at + rc as usize].iter().map(|g| g.1).sum::<usize>();
                at += rc as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The group at `at` was refused (sendmmsg reports an error only when the first
            // one fails): count it and go on with the next.
            let (first, count) = groups[at];
            at += 1;
            let unsupported = matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP));
            if count > 1 && unsupported {
                // Segmentation refused on this path: from now on one by one, these too.
                self.segment = false;
                for k in first..first + count {
                    let bytes = &self.bufs[k * self.slot..k * self.slot + self.lens[k]];
                    match sock.send_to(bytes, self.to[k]) {
                        Ok(_) => sent += 1,
                        Err(_) => failed += 1,
                    }
                }
            } else {
                failed += count;
            }
        }
        self.lens.clear();
        self.to.clear();
        self.dests.clear();
        (sent, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Loopback only: a burst is read in one call, each datagram with its own bytes, source and
    /// timestamp; then the replies go back in one call.
    #[test]
    fn a_burst_is_read_in_one_call_and_answered_in_one() {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimestampns, &true).unwrap();
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::Ipv4PacketInfo, &true).unwrap();
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::Ipv4RecvTtl, &true).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let to = sock.local_addr().unwrap();
        let peers: Vec<UdpSocket> = (0..3).map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()).collect();
        for (i, p) in peers.iter().enumerate() {
            p.send_to(format!("datagram {i}").as_bytes(), to).unwrap();
        }
        let mut rx = RecvBatch::new(64);
        assert_eq!(rx.recv(&sock).unwrap(), 3);
        let after = now_ns();
        let mut tx = SendBatch::new(64);
        let mut last_ns = 0;
        for (i, p) in peers.iter().enumerate() {
            let (bytes, r) = rx.get(i);
            assert_eq!(bytes, format!("datagram {i}").as_bytes());
            assert_eq!(r.from, p.local_addr().unwrap());
            assert_eq!(r.dst, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            assert_eq!(r.ttl, 64);
            // Kernel stamps, in order, and no later than the read returned. Not "before the read":
            // the kernel turns arrival stamping on through a deferred work item the first time a
            // socket asks, and stamps at read time what arrived before it ran (seen in CI).
            assert!(r.rx_ns >= last_ns && r.rx_ns <= after, "{} {} {after}", r.rx_ns, last_ns);
            last_ns = r.rx_ns;
            assert!(tx.push(format!("reply {i}").as_bytes(), r.from));
        }
        assert_eq!(tx.flush(&sock), (3, 0));
        assert!(tx.is_empty());
        for (i, p) in peers.iter().enumerate() {
            let mut buf = [0u8; 64];
            p.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let (n, from) = p.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (format!("reply {i}").as_bytes(), to));
        }
        // Nothing queued: the socket's read timeout ends the wait.
        assert_eq!(rx.recv(&sock).unwrap(), 0);
    }

    /// More than a batch queued: read in full batches, nothing lost or reordered; an oversize
    /// reply is refused by push, not cut.
    #[test]
    fn a_backlog_larger_than_a_batch_is_read_in_order() {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let to = sock.local_addr().unwrap();
        let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let total = BATCH * 2 + 5;
        for i in 0..total {
            peer.send_to(&(i as u32).to_be_bytes(), to).unwrap();
        }
        let mut rx = RecvBatch::new(8);
        let (mut seen, mut calls) = (0, 0);
        while seen < total {
            let n = rx.recv(&sock).unwrap();
            assert!(n > 0, "stalled after {seen}");
            for i in 0..n {
                let (bytes, r) = rx.get(i);
                assert_eq!(bytes, &(seen as u32).to_be_bytes());
                assert!(r.rx_ns > 0 && r.dst.is_none() && r.ttl == 0);
                seen += 1;
            }
            calls += 1;
        }
        assert_eq!(calls, 3);
        // Replies of one size to one peer go segmented, yet arrive as separate datagrams, in
        // order, around one of another size.
        let mut tx = SendBatch::new(64);
        for i in 0..5u8 {
            assert!(tx.push(&[i; 6], to));
        }
        assert!(tx.push(&[9; 3], to));
        assert!(tx.push(&[7; 6], to));
        assert_eq!(tx.flush(&peer), (7, 0));
        assert!(tx.segmenting(), "loopback refused UDP_SEGMENT");
        let want: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 6]).chain([vec![9; 3], vec![7; 6]]).collect();
        let mut got = Vec::new();
        while got.len() < want.len() {
            let n = rx.recv(&sock).unwrap();
            assert!(n > 0, "{} of {} replies arrived", got.len(), want.len());
            got.extend((0..n).map(|i| rx.get(i).0.to_vec()));
        }
        assert_eq!(got, want);
        let mut tx = SendBatch::new(4);
        assert!(!tx.push(b"too long", to));
        assert!(tx.is_empty());
    }

    /// The case nix's MultiHeaders gets wrong: a slot that first read a datagram without the
    /// drop count, then, after the buffer overflowed, one with it, still gets every control
    /// message (the kernel timestamp included) and the count.
    #[test]
    fn control_data_survives_the_first_drop() {
        use nix::sys::socket::{setsockopt, sockopt};
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        sock.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()).unwrap();
        super::super::set_rcvbuf(&sock, 1).unwrap(); // the kernel's minimum: a few datagrams
        super::super::enable_rx_metadata(&sock).unwrap();
        let sock: UdpSocket = sock.into();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        setsockopt(&sock, sockopt::Ipv4RecvTtl, &true).unwrap();
        let to = sock.local_addr().unwrap();
        let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let mut rx = RecvBatch::new(64);
        peer.send_to(b"first", to).unwrap();
        assert_eq!(rx.recv(&sock).unwrap(), 1);
        assert_eq!((rx.get(0).1.local_drops, rx.get(0).1.ttl), (None, 64));
        for _ in 0..200 {
            peer.send_to(b"flood", to).unwrap();
        }
        // Those queued before the buffer filled carry no drop count yet...
        let mut queued = 0;
        loop {
            let n = rx.recv(&sock).unwrap();
            if n == 0 {
                break;
            }
            queued += n;
        }
        assert!((1..200).contains(&queued), "{queued} read: nothing dropped?");
        // ...the next one does, into slot 0, whose last datagram had none.
        peer.send_to(b"after", to).unwrap();
        let read_at = now_ns() + 1;
        assert_eq!(rx.recv(&sock).unwrap(), 1);
        let (bytes, r) = rx.get(0);
        assert_eq!(bytes, b"after");
        assert_eq!(r.local_drops, Some((200 - queued) as u32), "{r:?}");
        // The kernel's stamp (taken before the send returned), not the fallback read time.
        assert!(r.rx_ns < read_at && r.ttl == 64, "{r:?}");
    }
}
