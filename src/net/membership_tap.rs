//! A packet tap for join and leave delays ([`super::membership`]): on one interface, the
//! membership reports this host *sends* (IGMP, MLD) and the multicast UDP datagrams to a port
//! range it *receives*, each with the kernel's timestamp of the frame at the interface, the very
//! stamp a capture (`tcpdump -i IFACE`) of the same frame shows.
//!
//! Outgoing frames reach only packet sockets bound to every protocol (`ETH_P_ALL`), so unlike
//! [`super::tap`] this one is; its filter keeps, by the frame's ancillary protocol and packet
//! type: outgoing IGMP (IPv4 protocol 2) and outgoing IPv6 whose first header is hop-by-hop
//! options or ICMPv6 (MLD reports carry a router alert), whole; and incoming multicast UDP to
//! the ports (not a later fragment; IPv6 without extension headers), its first [`SNAP`]
//! bytes. Received frames are stamped where the stack takes them in (before netfilter and the
//! membership check: a datagram the host no longer wants still counts as arriving, which is
//! what the leave delay measures); sent ones as they are handed to the device. Opening it needs
//! CAP_NET_RAW.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::libc;
use nix::sys::socket::{self, sockopt};

use super::membership::{parse_report, Delay, DelayTracker};
use super::tap::{self, instr, Unavailable};

/// Bytes of each UDP datagram copied: its IP and UDP headers.
const SNAP: u32 = 128;
/// Bytes of each report copied: a whole one (a report with many records fills an MTU), up to
/// a frame's slot.
const REPORT_SNAP: u32 = SLOT as u32;
const PACKET_MULTICAST: u32 = 2;
const PACKET_OUTGOING: u32 = 4;

/// What the tap watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipSpec {
    /// The interface (its index; never 0: reports are per interface).
    pub ifindex: u32,
    /// The UDP destination ports of the datagrams, inclusive.
    pub ports: (u16, u16),
    /// How long a group must not arrive before it counts as not flowing
    /// ([`DelayTracker::new`]).
    pub quiet: Duration,
}

/// A tiny assembler for the filter: jumps name labels, resolved when done.
struct Asm {
    code: Vec<(u32, Target, Target, u32)>,
    labels: Vec<Option<usize>>,
}

#[derive(Clone, Copy)]
enum Target {
    Next,
    Label(usize),
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn here(&mut self, l: usize) {
        self.labels[l] = Some(self.code.len());
    }
    fn op(&mut self, code: u32, k: u32) {
        self.code.push((code, Target::Next, Target::Next, k));
    }
    fn jump(&mut self, code: u32, k: u32, jt: Target, jf: Target) {
        self.code.push((code, jt, jf, k));
    }
    fn finish(self) -> Vec<libc::sock_filter> {
        let at = |i: usize, t: Target| -> u8 {
            match t {
                Target::Next => 0,
                Target::Label(l) => {
                    let to = self.labels[l].expect("every label is placed");
                    u8::try_from(to - i - 1).expect("the filter's jumps are short and forward")
                }
            }
        };
        (self.code.iter().enumerate()).map(|(i, &(code, jt, jf, k))| instr(code, at(i, jt), at(i, jf), k)).collect()
    }
}

/// The classic BPF program of a [`MembershipSpec`] (see the module comment), run on frames
/// whose data starts at the network header.
pub(crate) fn program(ports: (u16, u16)) -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_B, BPF_H, BPF_IND, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_LDX};
    use libc::{BPF_MSH, BPF_RET, BPF_W};
    use Target::{Label, Next};
    let mut a = Asm { code: Vec::new(), labels: Vec::new() };
    let [v4, v6, v4_out, v4_in, v6_out, v6_in, port, report, datagram, reject] = [(); 10].map(|_| a.label());
    let protocol = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
    let pkttype = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;
    a.op(BPF_LD | BPF_W | BPF_ABS, protocol);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, libc::ETH_P_IP as u32, Label(v4), Next);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, libc::ETH_P_IPV6 as u32, Label(v6), Label(reject));
    a.here(v4);
    a.op(BPF_LD | BPF_W | BPF_ABS, pkttype);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, Label(v4_out), Next);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, PACKET_MULTICAST, Label(v4_in), Label(reject));
    a.here(v4_out);
    a.op(BPF_LD | BPF_B | BPF_ABS, 9);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, 2, Label(report), Label(reject));
    a.here(v4_in);
    a.op(BPF_LD | BPF_B | BPF_ABS, 9);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, 17, Next, Label(reject));
    // A later fragment has no UDP header.
    a.op(BPF_LD | BPF_H | BPF_ABS, 6);
    a.jump(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, Label(reject), Next);
    // X = the IP header's length; A = the UDP destination port.
    a.op(BPF_LDX | BPF_B | BPF_MSH, 0);
    a.op(BPF_LD | BPF_H | BPF_IND, 2);
    // On to the port check (a jump taken either way: A >= 0 always holds).
    a.jump(BPF_JMP | BPF_JGE | BPF_K, 0, Label(port), Label(port));
    a.here(v6);
    a.op(BPF_LD | BPF_W | BPF_ABS, pkttype);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, Label(v6_out), Next);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, PACKET_MULTICAST, Label(v6_in), Label(reject));
    a.here(v6_out);
    a.op(BPF_LD | BPF_B | BPF_ABS, 6);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, 0, Label(report), Next);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, 58, Label(report), Label(reject));
    a.here(v6_in);
    a.op(BPF_LD | BPF_B | BPF_ABS, 6);
    a.jump(BPF_JMP | BPF_JEQ | BPF_K, 17, Next, Label(reject));
    a.op(BPF_LD | BPF_H | BPF_ABS, 42);
    a.here(port);
    a.jump(BPF_JMP | BPF_JGE | BPF_K, u32::from(ports.0), Next, Label(reject));
    a.jump(BPF_JMP | BPF_JGT | BPF_K, u32::from(ports.1), Label(reject), Label(datagram));
    a.here(report);
    a.op(BPF_RET | BPF_K, REPORT_SNAP);
    a.here(datagram);
    a.op(BPF_RET | BPF_K, SNAP);
    a.here(reject);
    a.op(BPF_RET | BPF_K, 0);
    a.finish()
}

/// A running tap; [`MembershipTap::stop`] ends it (dropping it does too, losing what is open).
pub struct MembershipTap {
    tracker: Arc<Mutex<DelayTracker>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    drops: Arc<Mutex<u64>>,
}

fn open(spec: &MembershipSpec) -> io::Result<OwnedFd> {
    let fd = tap::open_filtered(libc::ETH_P_ALL as u16, spec.ifindex, program(spec.ports))?;
    socket::setsockopt(&fd, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
    Ok(fd)
}

/// Frames the kernel dropped since the last call because the tap's buffer was full.
fn kernel_drops(fd: &OwnedFd) -> u64 {
    // SAFETY: tpacket_stats is plain old data; the kernel fills it (and resets its own).
    let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `st` has room for `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        u64::from(st.tp_drops)
    } else {
        0
    }
}

/// Frames read per system call.
const BATCH: usize = 32;
/// Bytes of each frame's slot: a report as long as a jumbo frame's MTU fits; a longer one is
/// read up to here (its records past the cut are not read).
const SLOT: usize = 9216;
/// Bytes of each frame's control messages: the timestamp's fits with room to spare.
const CMSG: usize = 64;

/// Buffers for [`drain`]: a slot and a control buffer per frame of a batch.
struct Buffers {
    frames: Vec<u8>,
    cmsgs: Vec<u8>,
}

impl Buffers {
    fn new() -> Buffers {
        Buffers { frames: vec![0; BATCH * SLOT], cmsgs: vec![0; BATCH * CMSG] }
    }
}

/// The `SCM_TIMESTAMPNS` of a received message, ns since the epoch.
fn timestamp(h: &libc::msghdr) -> Option<u64> {
    // SAFETY: `h` is a header recvmmsg filled, its control buffer live and `msg_controllen`
    // long; the CMSG_* macros stay inside it, and the timestamp is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some((ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64));
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// Reads every frame queued on `fd`, without waiting, into `tracker`, a batch per system call.
/// Err on a socket error.
fn drain(fd: &OwnedFd, b: &mut Buffers, tracker: &Mutex<DelayTracker>) -> io::Result<()> {
    loop {
        // SAFETY: all-zero iovec and mmsghdr are valid; every pointer set below points into
        // `b`, which outlives the call.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let (frames, cmsgs) = (b.frames.as_mut_ptr(), b.cmsgs.as_mut_ptr());
        for (i, (iov, hdr)) in iovs.iter_mut().zip(hdrs.iter_mut()).enumerate() {
            // SAFETY: slot i and control buffer i lie inside their vectors (BATCH of each).
            *iov = libc::iovec { iov_base: unsafe { frames.add(i * SLOT) }.cast(), iov_len: SLOT };
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = unsafe { cmsgs.add(i * CMSG) }.cast();
            hdr.msg_hdr.msg_controllen = CMSG as _;
        }
        // SAFETY: `hdrs` holds BATCH initialised headers.
        let n = unsafe {
            libc::recvmmsg(fd.as_raw_fd(), hdrs.as_mut_ptr(), BATCH as u32, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(()),
                _ => Err(e),
            };
        }
        let n = n as usize;
        let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
        for (i, h) in hdrs.iter().enumerate().take(n) {
            let ts = timestamp(&h.msg_hdr).unwrap_or_else(super::now_ns);
            let frame = &b.frames[i * SLOT..i * SLOT + (h.msg_len as usize).min(SLOT)];
            match tap::parse(frame) {
                // Only incoming multicast UDP passes the filter as UDP.
                Some(u) => t.datagram(ts, u.dst),
                None => {
                    for m in parse_report(frame) {
                        t.report(ts, m);
                    }
                }
            }
        }
        if n < BATCH {
            return Ok(());
        }
    }
}

impl MembershipTap {
    /// Starts watching; the error is one line for the user (no CAP_NET_RAW, most often).
    pub fn start(spec: &MembershipSpec) -> Result<MembershipTap, String> {
        let fd = open(spec).map_err(|e| {
            let Unavailable(why) = tap::unavailable(&e, "the membership reports and the groups' arrivals");
            why
        })?;
        let quiet = u64::try_from(spec.quiet.as_nanos()).unwrap_or(u64::MAX);
        let tracker = Arc::new(Mutex::new(DelayTracker::new(quiet)));
        let stop = Arc::new(AtomicBool::new(false));
        let drops = Arc::new(Mutex::new(0));
        let (t, s, d) = (tracker.clone(), stop.clone(), drops.clone());
        let thread = std::thread::Builder::new()
            .name("membership-tap".into())
            .spawn(move || {
                let mut buffers = Buffers::new();
                // Kernel stamps make the read's own lateness harmless: read every few ms.
                loop {
                    let last = s.load(Ordering::Relaxed);
                    if drain(&fd, &mut buffers, &t).is_err() {
                        break;
                    }
                    *d.lock().unwrap_or_else(|e| e.into_inner()) += kernel_drops(&fd);
                    if last {
                        break;
                    }
                    std::thread::sleep(tap::POLL);
                }
            })
            .map_err(|e| format!("not watching the membership reports: cannot start a thread: {e}"))?;
        Ok(MembershipTap { tracker, stop, thread: Some(thread), drops })
    }

    /// The joins and leaves complete so far, oldest first, taken.
    pub fn take(&self) -> Vec<Delay> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Frames the tap lost because it could not keep up (its delays may then be wrong).
    pub fn drops(&self) -> u64 {
        *self.drops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads what is still queued, stops, and closes every open join and leave at `end_ns`
    /// (the end of the watch, on the kernel's clock, CLOCK_REALTIME): the delays not taken yet.
    pub fn stop(mut self, end_ns: u64) -> Vec<Delay> {
        self.halt();
        self.tracker.lock().unwrap_or_else(|e| e.into_inner()).finish(end_ns)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MembershipTap {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_jumps_stay_inside_the_program() {
        let p = program((5000, 5001));
        for (i, ins) in p.iter().enumerate() {
            if ins.code as u32 & 0x07 == libc::BPF_JMP {
                assert!(i + 1 + usize::from(ins.jt.max(ins.jf)) < p.len(), "instruction {i} jumps out");
            }
        }
        assert_eq!(p.last().map(|i| (i.code as u32, i.k)), Some((libc::BPF_RET | libc::BPF_K, 0)));
    }

    /// The kernel accepts the program (it checks every jump), on loopback. Needs CAP_NET_RAW.
    #[test]
    fn the_kernel_takes_the_filter() {
        let lo = nix::net::if_::if_nametoindex("lo").unwrap();
        let spec = MembershipSpec { ifindex: lo, ports: (5000, 5000), quiet: Duration::from_millis(50) };
        match MembershipTap::start(&spec) {
            Ok(t) => assert!(t.stop(super::super::now_ns()).is_empty()),
            Err(why) if why.contains("CAP_NET_RAW") => println!("skipped: {why}"),
            Err(why) => panic!("{why}"),
        }
    }
}
