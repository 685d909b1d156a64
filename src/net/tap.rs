//! A packet tap: an `AF_PACKET` socket with a classic BPF filter that copies the start of every
//! UDP datagram to a few ports as it reaches an interface, before the host's own IP stack
//! (netfilter, the reverse-path filter, the multicast membership check, the socket lookup) has
//! a say. Comparing what the tap saw with what a socket received tells where along the host path
//! a datagram disappeared: on the wire, or inside this host.
//!
//! Where it sits, on Linux: a packet socket bound to one protocol (`ETH_P_IP` or `ETH_P_IPV6`)
//! gets each received frame after the NIC, after `tc` and nftables `netdev` ingress hooks
//! (loss injected there counts as the link's), and before `ip_rcv`: before every netfilter hook
//! (`prerouting`, `input`), rp_filter and the UDP socket lookup. It sees no frame this host
//! sends, and no multicast looped back to this host (`PACKET_LOOPBACK`), so a sender's own
//! copies never count.
//!
//! The filter keeps the frames addressed to this host (`PACKET_HOST`, `PACKET_MULTICAST`: not
//! those a promiscuous NIC overhears), UDP, not a later fragment, with a destination port in
//! the given ranges, and copies only their first [`SNAP`] bytes. IPv6 datagrams with extension
//! headers are not seen (the filter reads the UDP header right after the fixed one): they are
//! rare on a LAN, and missing one only makes the tap count less, never report a drop that did
//! not happen. Opening it needs CAP_NET_RAW, like the querier watch.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::libc;

/// Bytes of each datagram copied: an IPv4 header with options (60), UDP (8) and the first 30
/// bytes of an mcprobe message (its header, session, sequence and send time) fit.
pub(crate) const SNAP: u32 = 128;
/// Frames read per system call.
const BATCH: usize = 64;
/// How long a tap's thread sleeps between two reads of everything queued, at first. Waking on
/// every frame instead cost a responder at 40 000 probes/s more CPU than answering them (a
/// wake-up per probe on a 2-vCPU machine); a few ms of frames queue in the tap's buffer meanwhile.
pub(crate) const POLL: Duration = Duration::from_millis(5);
/// A tap's sleep between drains adapts to what they read: doubled up to [`POLL_MAX`] while a
/// drain reads fewer than [`BATCH`] frames (at 1 000 frames/s a 5 ms sleep still woke the tap 200
/// times a second for 5 frames each, 8 µs of CPU per probe and tap: issue 25), halved down to
/// [`POLL_MIN`] when one reads more than a quarter of what the buffer holds (at most
/// [`POLL_SHRINK_ABOVE`]: a 4 MiB buffer holds ~4 000 frames, one capped by rmem_max without
/// CAP_NET_ADMIN ~400). The first sleep after an idle wait is [`POLL`], not longer: a burst may
/// be starting.
const POLL_MAX: Duration = Duration::from_millis(10);
const POLL_MIN: Duration = Duration::from_millis(1);
const POLL_SHRINK_ABOVE: usize = 8 * BATCH;
/// How often a blocked read wakes to look at a stop flag, in a tap whose stopper does not ring
/// its [`Bell`].
pub(crate) const TICK: Duration = Duration::from_millis(50);
/// The tap's receive buffer: 40 ms of frames at 100 000/s (each takes ~1 KiB of it). Forced past
/// net.core.rmem_max when the process may (CAP_NET_ADMIN); else what that allows.
const RCVBUF: i32 = 4 << 20;
const PACKET_HOST: u8 = 0;
const PACKET_MULTICAST: u8 = 2;

/// What a tap listens for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TapSpec {
    pub v6: bool,
    /// The interface, or 0 for every interface.
    pub ifindex: u32,
    /// UDP destination ports, as inclusive ranges.
    pub ports: Vec<(u16, u16)>,
}

/// One frame the tap copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    pub len: usize,
    pub ifindex: u32,
    /// Sent to a multicast address (else to one of this host's).
    pub multicast: bool,
}

/// An open tap.
pub(crate) struct Tap {
    fd: OwnedFd,
    bufs: Vec<u8>,
    frames: Vec<Frame>,
    /// Frames the kernel dropped because the tap's own buffer was full, so far.
    drops: u64,
    /// Rung by whoever stops the tap's thread, once it asked for one ([`Tap::bell`]).
    bell: Option<Bell>,
    /// The next sleep between two drains (see [`POLL_MAX`]), and the frames a drain may read
    /// before it is shortened.
    poll: Duration,
    shrink_above: usize,
    /// The last pause was an idle wait: the next sleep is [`POLL`].
    after_idle: bool,
    /// How long the last idle wait lasted (see [`wait_again`]).
    last_wait: Option<Duration>,
}

/// Ends a tap's idle wait at once (an eventfd in its poll set): a tap thread stopped by a flag
/// set together with a ring needs no stop tick, so an idle tap sleeps until a frame comes.
#[derive(Debug, Clone)]
pub(crate) struct Bell(std::sync::Arc<OwnedFd>);

impl Bell {
    /// A new bell, not rung (also used by the querier watch, whose idle wait is the same).
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: a plain system call; a non-negative return is a new descriptor we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        Ok(Bell(std::sync::Arc::new(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    /// The descriptor to wait on (readable once rung).
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }

    /// Wakes the tap's wait, now and for every later one (the count is never read back).
    pub(crate) fn ring(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to a descriptor we own. A full counter
        // (EAGAIN) means it is rung already.
        unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }
}

/// Why a tap could not open, in one line for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unavailable(pub String);

/// After a drain that read frames (pure): wait for the next frame again, instead of sleeping
/// [`POLL`], when the drain followed an idle wait (`after_idle`) that lasted at least `POLL`
/// (`last_wait`; `None`: none yet). Frames that sparse (probes at 10-100/s) come one per wait,
/// so the sleep would find nothing and cost a second wake-up per frame (at 10/s each tap's two
/// wake-ups per probe were 75 µs of CPU per probe: results/limits-2026-12-04.md). Frames closer
/// together are read in sleeps as before; a burst after a quiet spell costs one more poll, which
/// returns at once, and is then read in sleeps.
fn wait_again(after_idle: bool, last_wait: Option<Duration>) -> bool {
    after_idle && last_wait.is_none_or(|d| d >= POLL)
}

/// The sleep after a drain that read `drained` frames, the last sleep having been `poll`; one
/// that read more than `shrink_above` shortens it.
fn next_poll(poll: Duration, drained: usize, shrink_above: usize) -> Duration {
    if drained < BATCH {
        (poll * 2).min(POLL_MAX)
    } else if drained > shrink_above {
        (poll / 2).max(POLL_MIN)
    } else {
        poll
    }
}

pub(crate) fn instr(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

/// The classic BPF program of a [`TapSpec`] (see the module comment), run on frames whose data
/// starts at the network header (a `SOCK_DGRAM` packet socket).
pub(crate) fn program(spec: &TapSpec) -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_B, BPF_H, BPF_IND, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_LDX};
    use libc::{BPF_MSH, BPF_RET, BPF_W};
    let mut p = Vec::new();
    // The frame's packet type (an ancillary load): to this host, or to a group it receives.
    let pkttype = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;
    p.push(instr(BPF_LD | BPF_W | BPF_ABS, 0, 0, pkttype));
    p.push(instr(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, u32::from(PACKET_HOST)));
    // Jumps to "reject" are patched once its place is known.
    p.push(instr(BPF_JMP | BPF_JEQ | BPF_K, 0, u8::MAX, u32::from(PACKET_MULTICAST)));
    let mut rejects = vec![p.len() - 1];
    if spec.v6 {
        // Next header UDP, right after the fixed 40-byte header.
        p.push(instr(BPF_LD | BPF_B | BPF_ABS, 0, 0, 6));
        p.push(instr(BPF_JMP | BPF_JEQ | BPF_K, 0, u8::MAX, 17));
        rejects.push(p.len() - 1);
        p.push(instr(BPF_LD | BPF_H | BPF_ABS, 0, 0, 42));
    } else {
        p.push(instr(BPF_LD | BPF_B | BPF_ABS, 0, 0, 9));
        p.push(instr(BPF_JMP | BPF_JEQ | BPF_K, 0, u8::MAX, 17));
        rejects.push(p.len() - 1);
        // A later fragment has no UDP header.
        p.push(instr(BPF_LD | BPF_H | BPF_ABS, 0, 0, 6));
        p.push(instr(BPF_JMP | BPF_JSET | BPF_K, u8::MAX, 0, 0x1fff));
        rejects.push(p.len() - 1);
        // X = the IP header's length; A = the UDP destination port.
        p.push(instr(BPF_LDX | BPF_B | BPF_MSH, 0, 0, 0));
        p.push(instr(BPF_LD | BPF_H | BPF_IND, 0, 0, 2));
    }
    // The header checks' "reject", right here (conditional jumps reach 255 instructions at
    // most), jumped over on the way to the ports.
    p.push(instr(BPF_JMP | libc::BPF_JA, 0, 0, 1));
    let reject = p.len();
    p.push(instr(BPF_RET | BPF_K, 0, 0, 0));
    // Each range: three instructions, with jumps short enough for any number of ranges.
    for &(lo, hi) in &spec.ports {
        p.push(instr(BPF_JMP | BPF_JGE | BPF_K, 0, 2, u32::from(lo)));
        p.push(instr(BPF_JMP | BPF_JGT | BPF_K, 1, 0, u32::from(hi)));
        p.push(instr(BPF_RET | BPF_K, 0, 0, SNAP));
    }
    p.push(instr(BPF_RET | BPF_K, 0, 0, 0));
    for i in rejects {
        let offset = u8::try_from(reject - i - 1).expect("the header checks are short");
        if p[i].jt == u8::MAX {
            p[i].jt = offset;
        } else {
            p[i].jf = offset;
        }
    }
    p
}

/// The sorted ranges that cover `ports`, adjacent ports merged.
pub(crate) fn ranges(ports: impl IntoIterator<Item = u16>) -> Vec<(u16, u16)> {
    let mut ports: Vec<u16> = ports.into_iter().collect();
    ports.sort_unstable();
    ports.dedup();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for p in ports {
        match out.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(p) => *hi = p,
            _ => out.push((p, p)),
        }
    }
    out
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

pub(crate) fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    check(rc).map(|_| ())
}

fn bind(fd: &OwnedFd, protocol: u16, ifindex: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: a valid sockaddr_ll of the length passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    check(rc).map(|_| ())
}

/// The one-line reason a packet socket could not open, for the user; `what` names what would
/// have been watched.
pub(crate) fn unavailable(e: &io::Error, what: &str) -> Unavailable {
    Unavailable(match e.kind() {
        io::ErrorKind::PermissionDenied => format!(
            "not watching {what} at the interface: a packet socket needs CAP_NET_RAW (run as root, or setcap cap_net_raw+ep on mcprobe)"
        ),
        _ => format!("not watching {what} at the interface: cannot open a packet socket: {e}"),
    })
}

/// A `SOCK_DGRAM` packet socket for `protocol` (`ETH_P_IP`, `ETH_P_IPV6` or `ETH_P_ALL`) on
/// interface `ifindex` (0: all), with filter `code`, a [`RCVBUF`] buffer and reads that wake
/// every [`TICK`]. Protocol 0 first: the socket receives nothing until the filter is on and it
/// is bound, so no unfiltered frame gets in between.
pub(crate) fn open_filtered(protocol: u16, ifindex: u32, mut code: Vec<libc::sock_filter>) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let raw = check(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let prog = libc::sock_fprog { len: code.len() as u16, filter: code.as_mut_ptr() };
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
    if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &RCVBUF).is_err() {
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &RCVBUF)?;
    }
    let tick = libc::timeval { tv_sec: 0, tv_usec: TICK.as_micros() as libc::suseconds_t };
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tick)?;
    bind(&fd, protocol, ifindex)?;
    Ok(fd)
}

impl Tap {
    /// Opens a tap; `what` names it in the one-line reason when it cannot (e.g. "the acks").
    pub(crate) fn open(spec: &TapSpec, what: &str) -> Result<Tap, Unavailable> {
        Tap::try_open(spec).map_err(|e| unavailable(&e, what))
    }

    fn try_open(spec: &TapSpec) -> io::Result<Tap> {
        let protocol = if spec.v6 { libc::ETH_P_IPV6 } else { libc::ETH_P_IP } as u16;
        let fd = open_filtered(protocol, spec.ifindex, program(spec))?;
        let (bufs, frames) = (vec![0; SNAP as usize * BATCH], Vec::with_capacity(BATCH));
        // What the kernel granted (each frame takes ~1 KiB of it, headers and all).
        let room = socket2::SockRef::from(&fd).recv_buffer_size().unwrap_or(0) / 1024;
        let shrink_above = POLL_SHRINK_ABOVE.min(room / 4).max(BATCH);
        Ok(Tap { fd, bufs, frames, drops: 0, bell: None, poll: POLL, shrink_above, after_idle: true, last_wait: None })
    }

    /// Waits up to [`TICK`] for frames (not at all with `nowait`), then takes those already
    /// queued; each is read with [`Tap::frame`]. An empty slice when none came.
    pub(crate) fn recv(&mut self, nowait: bool) -> io::Result<&[Frame]> {
        self.frames.clear();
        // SAFETY: all-zero iovec, mmsghdr and sockaddr_ll are valid; every pointer set below
        // points into buffers that outlive the call.
        let mut iovs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        let mut names: [libc::sockaddr_ll; BATCH] = unsafe { mem::zeroed() };
        let base = self.bufs.as_mut_ptr();
        for (i, (iov, hdr)) in iovs.iter_mut().zip(hdrs.iter_mut()).enumerate() {
            // SAFETY: slot i lies inside `bufs` (BATCH slots of SNAP bytes).
            *iov = libc::iovec { iov_base: unsafe { base.add(i * SNAP as usize) }.cast(), iov_len: SNAP as usize };
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_ll).cast();
            hdr.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        }
        let flags = if nowait { libc::MSG_DONTWAIT } else { libc::MSG_WAITFORONE };
        // SAFETY: `hdrs` holds BATCH initialised headers.
        let n = unsafe {
            libc::recvmmsg(self.fd.as_raw_fd(), hdrs.as_mut_ptr(), BATCH as u32, flags, std::ptr::null_mut())
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(&self.frames),
                _ => Err(e),
            };
        }
        for i in 0..n as usize {
            self.frames.push(Frame {
                len: (hdrs[i].msg_len as usize).min(SNAP as usize),
                ifindex: names[i].sll_ifindex as u32,
                multicast: names[i].sll_pkttype == PACKET_MULTICAST,
            });
        }
        Ok(&self.frames)
    }

    /// Reads every frame already queued, without waiting, handing each to `f` with its
    /// bytes (from the network header). Returns how many there were.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(&[u8], Frame)) -> io::Result<usize> {
        let mut total = 0;
        loop {
            let n = self.recv(true)?.len();
            for i in 0..n {
                f(self.frame(i), self.frames[i]);
            }
            total += n;
            if n < BATCH {
                return Ok(total);
            }
        }
    }

    /// Between two drains: after one that read frames, a sleep (from [`POLL`], adapted to the
    /// frames each drain reads, see [`POLL_MAX`]), so that under load frames are read in
    /// batches, unless frames are sparse (see [`wait_again`]); after an empty one, a wait for the next frame or the ring of its [`Bell`]
    /// (without one, at most [`TICK`], for a stop flag), so that an idle tap does not wake 200
    /// times a second (it cost a prober at 10 probes/s more CPU than its probes: issue 25).
    pub(crate) fn pause(&mut self, drained: usize) {
        if drained > 0 && !wait_again(self.after_idle, self.last_wait) {
            self.poll = if self.after_idle { POLL } else { next_poll(self.poll, drained, self.shrink_above) };
            self.after_idle = false;
            std::thread::sleep(self.poll);
            return;
        }
        (self.poll, self.after_idle) = (POLL, true);
        let pollfd = |fd: i32| libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let mut fds = [pollfd(self.fd.as_raw_fd()), pollfd(self.bell.as_ref().map_or(-1, |b| b.0.as_raw_fd()))];
        // With a bell, the stopper wakes the wait: no tick at all (-1: wait for ever). Without,
        // TICK for the stop flag. A negative descriptor is ignored by poll.
        let timeout = if self.bell.is_some() { -1 } else { TICK.as_millis() as libc::c_int };
        let began = Instant::now();
        // SAFETY: two valid pollfds for the duration of the call. An error or EINTR just ends
        // the wait early: the caller drains and comes back.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        self.last_wait = Some(began.elapsed());
    }

    /// A bell that ends this tap's idle waits; from then on its stopper must ring it when it
    /// sets the stop flag (idle waits no longer time out to look at the flag).
    pub(crate) fn bell(&mut self) -> io::Result<Bell> {
        match &self.bell {
            Some(b) => Ok(b.clone()),
            None => Ok(self.bell.insert(Bell::new()?).clone()),
        }
    }

    /// The bytes of frame `i` of the last [`Tap::recv`] (from the network header).
    pub(crate) fn frame(&self, i: usize) -> &[u8] {
        let start = i * SNAP as usize;
        &self.bufs[start..start + self.frames[i].len]
    }

    /// Frames the kernel dropped so far because the tap could not keep up: what the tap
    /// counted is then a lower bound.
    pub(crate) fn drops(&mut self) -> u64 {
        // SAFETY: tpacket_stats is plain old data; the kernel fills it (and resets its own).
        let mut st: libc::tpacket_stats = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` has room for `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            self.drops += u64::from(st.tp_drops);
        }
        self.drops
    }
}

/// A UDP datagram's addresses and the start of its payload, from a frame's network header on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Udp<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub dport: u16,
    /// As much of the payload as the tap copied.
    pub payload: &'a [u8],
}

/// Reads the IP and UDP headers of a frame (pure; `None` when it is not one the filter keeps).
pub(crate) fn parse(frame: &[u8]) -> Option<Udp<'_>> {
    let version = frame.first()? >> 4;
    let (src, dst, udp) = match version {
        4 => {
            let ihl = usize::from(frame[0] & 0x0f) * 4;
            if ihl < 20 || frame.len() < ihl + 8 || frame[9] != 17 {
                return None;
            }
            let a = |o: usize| IpAddr::V4(Ipv4Addr::new(frame[o], frame[o + 1], frame[o + 2], frame[o + 3]));
            (a(12), a(16), &frame[ihl..])
        }
        6 => {
            if frame.len() < 48 || frame[6] != 17 {
                return None;
            }
            let a = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&frame[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            (a(8), a(24), &frame[40..])
        }
        _ => return None,
    };
    Some(Udp { src, dst, dport: u16::from_be_bytes([udp[2], udp[3]]), payload: &udp[8..] })
}

/// What an mcprobe message's first bytes say, read without decoding the rest (the tap has only
/// the start of it): its type and session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek {
    Probe { session: u64 },
    Ack { session: u64 },
}

/// Reads an mcprobe header and session (`None` for anything else). Offsets as `crate::wire`
/// documents them; a unit test checks this against the real decoder.
pub(crate) fn peek(payload: &[u8]) -> Option<Peek> {
    if payload.len() < 14 || payload[..3] != crate::wire::MAGIC || payload[3] != crate::wire::VERSION {
        return None;
    }
    let session = u64::from_be_bytes(payload[6..14].try_into().ok()?);
    match payload[4] {
        1 => Some(Peek::Probe { session }),
        2 => Some(Peek::Ack { session }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ack, Probe};

    #[test]
    fn peek_agrees_with_the_decoder() {
        let p = Probe { session: 0x1122_3344_5566_7788, seq: 9, tx_ns: 1, asks_ext: true }.encode(64);
        assert_eq!(peek(&p), Some(Peek::Probe { session: 0x1122_3344_5566_7788 }));
        let a = Ack { session: 42, name: "h2".into(), ..Ack::default() }.encode_within(100).unwrap();
        assert_eq!(peek(&a), Some(Peek::Ack { session: 42 }));
        assert_eq!(peek(&a[..13]), None);
        assert_eq!(peek(b"ack"), None);
        let mut other = a.clone();
        other[3] = 9;
        assert_eq!(peek(&other), None);
    }

    #[test]
    fn headers_of_both_families() {
        let mut v4 = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 1, 17, 0, 0, 10, 77, 0, 2, 239, 255, 42, 42];
        v4.extend_from_slice(&[0x5e, 0xb2, 0x5e, 0xb3, 0, 20, 0, 0]);
        v4.extend_from_slice(b"MCP");
        let u = parse(&v4).unwrap();
        assert_eq!((u.src, u.dst, u.dport), ("10.77.0.2".parse().unwrap(), "239.255.42.42".parse().unwrap(), 24243));
        assert_eq!(u.payload, b"MCP");
        let mut v6 = vec![0x60, 0, 0, 0, 0, 11, 17, 1];
        v6.extend_from_slice(&"fd77::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&"ff12::4242".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0x5e, 0xb2, 0x5e, 0xb2, 0, 11, 0, 0, b'M', b'C', b'P']);
        let u = parse(&v6).unwrap();
        assert_eq!((u.src, u.dport, u.payload), ("fd77::1".parse().unwrap(), 24242, &b"MCP"[..]));
        // TCP, and a truncated header.
        v4[9] = 6;
        assert_eq!(parse(&v4), None);
        assert_eq!(parse(&v6[..30]), None);
    }

    #[test]
    fn sparse_frames_are_waited_for_not_slept_after() {
        let ms = Duration::from_millis;
        // Probes at 10/s: each frame ends a wait of ~100 ms.
        assert!(wait_again(true, Some(ms(100))));
        assert!(wait_again(true, Some(POLL)));
        assert!(wait_again(true, None));
        // 1 000/s: the wait ends within a ms: from then on, sleeps.
        assert!(!wait_again(true, Some(ms(1))));
        assert!(!wait_again(true, Some(POLL - Duration::from_micros(1))));
        // Already sleeping between drains: never.
        assert!(!wait_again(false, Some(ms(100))));
        assert!(!wait_again(false, None));
    }

    #[test]
    fn the_sleep_between_drains_follows_the_frames_read() {
        let ms = Duration::from_millis;
        let big = POLL_SHRINK_ABOVE;
        // 1 000 frames/s: 5 frames a 5 ms sleep, then 10 a 10 ms one: no longer.
        assert_eq!(next_poll(POLL, 5, big), ms(10));
        assert_eq!(next_poll(ms(10), 10, big), POLL_MAX);
        // 10 000/s: 100 frames a 10 ms sleep: kept.
        assert_eq!(next_poll(ms(10), 100, big), ms(10));
        // A jump to 200 000/s: 2 000 frames in 10 ms: halved down to 1 ms.
        assert_eq!(next_poll(ms(10), 2_000, big), ms(5));
        assert_eq!(next_poll(POLL_MIN, 2_000, big), POLL_MIN);
        // A buffer of ~400 frames (rmem_max without CAP_NET_ADMIN): halved above 100.
        assert_eq!(next_poll(ms(10), 150, 100), ms(5));
    }

    #[test]
    fn ports_merge_into_ranges() {
        assert_eq!(ranges([5, 3, 4, 9, 65535, 4]), [(3, 5), (9, 9), (65535, 65535)]);
        assert!(ranges([]).is_empty());
    }

    #[test]
    fn the_filter_jumps_stay_inside_the_program() {
        for v6 in [false, true] {
            let spec = TapSpec { v6, ifindex: 0, ports: (0..300).map(|i| (1000 + 2 * i, 1000 + 2 * i)).collect() };
            let p = program(&spec);
            for (i, ins) in p.iter().enumerate() {
                if ins.code as u32 & 0x07 == libc::BPF_JMP {
                    let far =
                        if ins.code as u32 & 0xf0 == libc::BPF_JA { ins.k as usize } else { ins.jt.max(ins.jf).into() };
                    assert!(i + 1 + far < p.len(), "instruction {i} jumps out");
                }
            }
            assert!(p.len() < 4096);
        }
    }

    /// The real kernel path, on loopback: datagrams to a tapped port are seen with their
    /// source; those to another port are not. Needs CAP_NET_RAW (skips without it).
    #[test]
    fn a_tap_on_loopback_sees_the_datagrams_to_its_ports() {
        let target = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = target.local_addr().unwrap().port();
        let lo = nix::net::if_::if_nametoindex("lo").unwrap();
        let mut tap = match Tap::open(&TapSpec { v6: false, ifindex: lo, ports: vec![(port, port)] }, "test") {
            Ok(t) => t,
            Err(Unavailable(why)) => return println!("skipped: {why}"),
        };
        let from = std::net::UdpSocket::bind("127.0.0.3:0").unwrap();
        for _ in 0..5 {
            from.send_to(b"MCP-hello", target.local_addr().unwrap()).unwrap();
            from.send_to(b"other", other.local_addr().unwrap()).unwrap();
        }
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while seen.len() < 5 && std::time::Instant::now() < deadline {
            let n = tap.recv(false).unwrap().len();
            for i in 0..n {
                let u = parse(tap.frame(i)).expect("a UDP frame");
                seen.push((u.src, u.dport, u.payload.to_vec(), tap.frames[i].multicast, tap.frames[i].ifindex));
            }
        }
        // Loopback frames can be seen twice only if the tap were bound to ETH_P_ALL; it is not.
        let want = ("127.0.0.3".parse::<IpAddr>().unwrap(), port, b"MCP-hello".to_vec(), false, lo);
        assert_eq!(seen, vec![want; 5]);
        assert!(tap.recv(true).unwrap().is_empty());
        assert_eq!(tap.drops(), 0);
    }
}
