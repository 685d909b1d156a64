//! The mcprobe packet format: pure encode/decode, no I/O.
//!
//! Every datagram starts with the same 6-byte header, then a body whose layout the message type fixes.
//! All integers are big-endian (network order). Decoding any byte string returns a message or an
//! error; it never panics, whatever the input (a proptest and a fuzz target check this).
//!
//! ```text
//! header (6 bytes)
//!   0  magic     3  b"MCP"          rejects foreign traffic cheaply
//!   3  version   1  1               bumped on any incompatible change
//!   4  type      1  1 probe, 2 ack, 3 notice
//!   5  flags     1  bit 0: ack carries a name; bit 1: keyed, the datagram ends with a 16-byte
//!                   tag (see `crate::auth`); bit 2: ack carries the extension; other bits
//!                   reserved, must be 0
//!
//! probe (30 bytes + padding)
//!   6  session   8  random per probe run; acks echo it, so concurrent runs never mix
//!  14  seq       8  0, 1, 2, … per session; u64 never wraps in practice
//!  22  tx_ns     8  sender's transmit time, ns since the Unix epoch (CLOCK_REALTIME, the same clock
//!                   as kernel receive timestamps, so RTT = rx − tx stays in one clock domain)
//!  30  asks      1  first padding byte: bit 0 set = "this prober decodes the ack extension";
//!                   bit 1 set = "this prober reads notices" (every probe of this build sets it);
//!                   bit 2 set = "the tag binds the probe's destination and source" (every keyed
//!                   probe of this build sets it: see `crate::auth`); other bits reserved (sent
//!                   as 0, ignored). A version-1 prober pads with zeros.
//!  31  padding   …  zeros up to --size. The padding is what lets an ack fit: see below. A probe
//!                   shorter than an ack (64 bytes, plus the tag when keyed) is neither answered
//!                   nor counted by a responder.
//!
//! ack (64 bytes + optional extension + optional name)
//!   6  session   8  echoed from the probe
//!  14  seq       8  echoed
//!  22  tx_ns     8  echoed; the prober keeps the send time of every probe still inside its
//!                   timeout and requires the echo to match it exactly (an ack that echoes
//!                   another value is invalid and its probe stays unanswered); a late ack's
//!                   echo is used as is
//!  30  responder 8  random per responder start: a restart shows up as a new id with the same name
//!                   (and address), which the prober reports as the same responder
//!  38  rx_ns     8  when the probe reached the responder (its clock, ns since the epoch)
//!  46  dwell_ns  4  responder transmit time − rx_ns, saturating at ~4.29 s; the prober subtracts it
//!                   from the RTT (as TWAMP does) to remove the responder's own processing time
//!  50  received  4  probes of this session the responder has received, this one included (mod 2^32):
//!                   1 in the first ack; a probe duplicated on the way counts twice
//!  54  ack_seq   4  index of this ack among the acks the responder sent in this session, from 0
//!                   (mod 2^32); an ack whose send fails still uses its number
//!  58  limited   4  probes of this session the responder did not answer because of its rate limit
//!                   (counted in `received` too)
//!  62  ttl       1  IP TTL the probe arrived with (0 = unknown): hop distance = sent TTL − this
//!  63  arrival   1  0 unknown, 1 multicast, 2 unicast: how the probe reached the responder
//!  extension, only when flags bit 2 is set (see "The extension" below):
//!  64  ext_len   1  bytes of extension that follow: at least 20; a decoder reads the fields it
//!                   knows and skips the rest, so later fields can be added without a new version
//!  65  host_drops 4 probes of this session its socket dropped for want of buffer space, saturating:
//!                   each gap in the session's sequence numbers, up to what the socket's drop
//!                   count (SO_RXQ_OVFL, shared by all its traffic) grew meanwhile
//!  69  join_delay 8  ns from the responder joining the group to this session's first probe, when
//!                   that came by multicast (RFC 2432's join delay, if the prober was already
//!                   sending then); u64::MAX = not known
//!  77  member_ns 8  ns from the join to this probe's arrival; u64::MAX = not known
//!  85  filtered  4  probes from this ack's destination address (the prober's host), all its
//!                   sessions, that reached the responder host's interface but never its socket
//!                   (a firewall, rp_filter, a join on another interface), as its packet tap
//!                   counted them since it started; saturating; u32::MAX = not watched (no
//!                   CAP_NET_RAW). Absent (ext_len 20) from responders older than it.
//!  89  heard     4  multicast probes from this ack's destination address (the prober's host),
//!                   all its sessions, that reached the responder's socket, counted since it
//!                   started; saturating; u32::MAX = not known. In an ack to a unicast probe it
//!                   tells a prober whose multicast acks never come whether its multicast
//!                   reaches the responder at all. Absent (ext_len 24) from responders older
//!                   than it.
//!  93  group    17  in acks to unicast probes only, and only when the whole name still fits
//!                   (ext_len 45, else 28): the group this responder serves, so a prober whose
//!                   multicast goes unanswered where unicast works can tell a responder on
//!                   another group from a network fault: 1 byte family (4 or 6), then the
//!                   address (IPv4 in the first 4 of 16 bytes, the rest zero)
//! 110  joins     4  the join/leave record (ext_len 68), only with the group above, which it is
//!                   about (then also in acks to multicast probes: the probe's group), and only
//!                   when the whole name still fits: joins of that group the responder measured
//!                   so far (`respond --churn`), saturating; then the latest join and leave:
//! 114  join      9  1 byte state, 8 bytes ns: state 1 = measured (ns from the membership report
//!                   leaving the responder to the group's first probe arriving, RFC 3918 §8.2);
//!                   0 = none yet; 2 = the group was already arriving (the LAN floods it: no
//!                   delay); 3 = never arrived while joined; 6 = not measurable here; 7 = the
//!                   group's probes started after the join (no delay); the ns are
//!                   0 unless the state is 1; an unknown state reads as 0
//! 123  leave     9  the same for the latest leave (RFC 3918 §6.2: ns from the leave report to
//!                   the group's last probe arriving); states also 4 = no probe after the leave,
//!                   5 = still arriving when the group was joined again or the watch ended (the
//!                   LAN floods it: no delay)
//! 132  clock     1  1 = interface timestamps (a packet tap); 2 = the join/leave system call's
//!                   time (no CAP_NET_RAW: two or more kernel ticks early, no leave delay);
//!                   0 = unknown
//! 133  joined    4  the memberships record (ext_len 85), only with the group and the join/leave
//!                   record above (all zero when the responder has none to tell), and only when
//!                   the whole name still fits; sent by a responder ramping its memberships
//!                   (`respond --groups … --ramp`, for `mcprobe max-groups`): groups of its list
//!                   it has joined so far (the first `joined`, in the list's order)
//! 137  refused   4  memberships its kernel refused so far (saturating)
//! 141  refusal   1  why the first was refused: 0 none, 1 ENOBUFS (a socket's membership or
//!                   option-memory limit), 2 EMFILE/ENFILE (file descriptors), 3 ENOMEM, 255 other
//! 142  canary    4  probes of its canary group (one it did not join) that reached its
//!                   interface, counted by its packet tap since it started (saturating):
//!                   flooding; u32::MAX = not watched (no CAP_NET_RAW)
//! 146  flood_at  4  groups it had joined when the first canary probe arrived: where flooding
//!                   began, to the ramp's step; u32::MAX = none arrived (or not watched)
//!   …  name_len  1  only when flags bit 0 is set; then name_len (1..=64) bytes of UTF-8 name
//!
//! notice (39 bytes): why a responder does not answer a prober (see "Notices" below)
//!   6  session   8  echoed from the probe
//!  14  seq       8  echoed
//!  22  tx_ns     8  echoed
//!  30  responder 8  its id
//!  38  reason    1  1 key needed: the probe carried no tag and this responder has a key;
//!                   2 key mismatch: the probe's tag does not verify with this responder's key
//!                   (another key, or a copy sent to a group, port or source it was not made for)
//!   …  later versions may append fields; a decoder reads the ones it knows and skips the rest
//! ```
//!
//! An ack's length is exact: 64 bytes, plus `1 + ext_len` with the extension, plus `1 + name_len`
//! with a name, plus the tag when keyed. A shorter or longer ack is invalid (counted, never
//! guessed at).
//!
//! Why these widths: the fixed part of an ack is exactly 64 bytes, so a 64-byte probe (the size
//! peers such as iperf and sockperf are usually compared at) can still be answered without
//! amplification. The three responder counters are 32-bit to fit; they only ever grow within a
//! session and are never more than `seq + 1`, so the prober restores their full value exactly with
//! [`unwrap_counter`]. From one ack to a later one (by `ack_seq`), `received` grows by at least
//! the acks sent and the probes limited in between; the prober flags acks that contradict this
//! (`inconsistent_acks`) and does not use their counters. The extension and the name travel only
//! when the probe is large enough to carry them, the extension first: a responder leaves out the
//! extension and truncates or omits the name rather than send an ack larger than the probe (no
//! amplification, ever). A prober whose `--size` is smaller pads a few probes of each session to
//! [`INFO_PROBE_LEN`] (see `crate::prober`), so it still learns names and host drops; it asks
//! for the extension in those only, so the other acks keep all their room for the name.
//!
//! ## The extension, and why version 1 still works both ways
//!
//! The extension came after version 1 was in use, and the version byte did not change: every
//! pairing of old and new prober and responder measures what it measured before.
//! - A version-1 responder ignores a probe's padding, so it answers a new prober's probes as
//!   always; the new prober reads a 64-byte ack as one without extension (host drops unknown).
//! - A new responder adds the extension only when the probe's `asks` bit says the prober decodes
//!   it. A version-1 prober pads with zeros, so it gets exactly the acks it always got (its
//!   decoder rejects unknown flag bits and trailing bytes, which is why the extension must be
//!   asked for, not just sent).
//!
//! `crate::compat_tests` checks the four pairings with the version-1 encoder and decoder kept
//! in `wire/v1.rs`.
//!
//! A keyed datagram (flag bit 1) ends with a 16-byte MAC tag over everything before it; decoding
//! leaves the tag out and [`crate::auth`] checks it. A keyed ack is still no larger than its
//! probe: the responder encodes it within the probe's length minus the tag. A keyed probe's tag
//! also covers what the probe is for, its destination address and port and its source address,
//! which travel in the IP and UDP headers, not in the probe (`asks` bit 2 says so); see
//! `crate::auth` for why, and for what a responder does with probes of earlier versions, whose
//! tags do not.
//!
//! ## Notices
//!
//! A responder that refuses a probe for want of the right key says so, with a notice to the
//! probe's source, so that the prober can report "key mismatch" instead of a silent host. A
//! notice is not keyed (the prober may have no key, or another one) and so proves nothing; it
//! is sent only to probes that ask for notices (`asks` bit 1, which a version-1 prober never
//! sets, so it never gets a datagram it cannot decode), never larger than the probe, at most
//! one a second per source address and within the responder's budgets (see
//! `crate::responder`).

use std::net::IpAddr;

/// First three bytes of every mcprobe datagram.
pub const MAGIC: [u8; 3] = *b"MCP";
/// Format version written and accepted by this build.
pub const VERSION: u8 = 1;
/// Bytes of the common header.
pub(crate) const HEADER_LEN: usize = 6;
/// Smallest valid probe: header and the three probe fields, no padding.
pub const PROBE_LEN: usize = 30;
/// Fixed part of an ack, without the name.
pub const ACK_FIXED_LEN: usize = 64;
/// Longest responder name carried on the wire.
pub const MAX_NAME_LEN: usize = 64;
/// Bytes of the extension's fields this build writes (after its length byte) without the
/// group.
pub const EXT_LEN: usize = 28;
/// The extension up to `filtered`, as responders before `heard` wrote it.
pub(crate) const EXT_FILTERED_LEN: usize = 24;
/// Bytes of the extension with the group a responder serves (acks to unicast probes).
pub const EXT_GROUP_LEN: usize = EXT_LEN + 17;
/// Bytes of the join/leave record ([`GroupDelays`]) after the group.
pub(crate) const JOIN_LEAVE_LEN: usize = 4 + 9 + 9 + 1;
/// Bytes of the extension with the group and its join/leave record.
pub const EXT_JOIN_LEAVE_LEN: usize = EXT_GROUP_LEN + JOIN_LEAVE_LEN;
/// Bytes of the memberships record ([`Memberships`]) after the join/leave record.
pub(crate) const MEMBERSHIPS_LEN: usize = 4 + 4 + 1 + 4 + 4;
/// Bytes of the extension with the group, the join/leave record and the memberships record.
pub const EXT_MEMBERSHIPS_LEN: usize = EXT_JOIN_LEAVE_LEN + MEMBERSHIPS_LEN;
/// The extension's first fields, all a decoder requires: what responders before `filtered`
/// wrote.
pub(crate) const EXT_MIN_LEN: usize = 20;
/// A probe large enough for any ack: fixed part, extension and the longest name. A prober pads
/// a few probes of each session to this (plus the tag when keyed) when its `--size` is smaller.
pub const INFO_PROBE_LEN: usize = ACK_FIXED_LEN + 1 + EXT_GROUP_LEN + 1 + MAX_NAME_LEN;
/// Smallest `--size` a prober may send: every responder can answer it, if without its name.
pub(crate) const MIN_PROBE_SIZE: usize = ACK_FIXED_LEN;
/// Largest UDP payload over IPv4.
pub(crate) const MAX_PROBE_SIZE: usize = 65_507;

const TYPE_PROBE: u8 = 1;
const TYPE_ACK: u8 = 2;
const TYPE_NOTICE: u8 = 3;
const FLAG_NAME: u8 = 0x01;
const FLAG_EXT: u8 = 0x04;
/// Bit of a probe's `asks` byte: the prober decodes the ack extension.
const ASKS_EXT: u8 = 0x01;
/// Bit of a probe's `asks` byte: the prober reads notices. Set in every probe this build
/// encodes: a property of the build, like the version, not a choice per probe.
const ASKS_NOTICE: u8 = 0x02;
/// Bit of a probe's `asks` byte: its tag binds its destination and source (`crate::auth`).
pub(crate) const ASKS_BOUND: u8 = 0x04;
/// Offset of a probe's `asks` byte, the first byte of its padding.
pub(crate) const ASKS_OFFSET: usize = PROBE_LEN;
/// Bytes of a notice.
pub const NOTICE_LEN: usize = 39;
/// "Not known" in the extension's time fields.
const UNKNOWN_NS: u64 = u64::MAX;
/// Header flag of keyed datagrams.
pub(crate) const FLAG_AUTH: u8 = 0x02;
/// Offset of the flags byte.
pub(crate) const FLAG_OFFSET: usize = 5;
/// Bytes of the MAC tag that ends a keyed datagram.
pub const TAG_LEN: usize = 16;

/// How a probe reached the responder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    #[default]
    Unknown,
    Multicast,
    Unicast,
}

impl Arrival {
    fn to_byte(self) -> u8 {
        match self {
            Arrival::Unknown => 0,
            Arrival::Multicast => 1,
            Arrival::Unicast => 2,
        }
    }

    fn from_byte(b: u8) -> Result<Self, DecodeError> {
        match b {
            0 => Ok(Arrival::Unknown),
            1 => Ok(Arrival::Multicast),
            2 => Ok(Arrival::Unicast),
            other => Err(DecodeError::BadField("arrival", other as u64)),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Arrival::Unknown => "unknown",
            Arrival::Multicast => "multicast",
            Arrival::Unicast => "unicast",
        }
    }
}

/// A probe as the prober sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub session: u64,
    pub seq: u64,
    pub tx_ns: u64,
    /// The prober decodes the ack extension: the responder may add it. Travels in the first
    /// padding byte, so a probe of exactly [`PROBE_LEN`] bytes cannot ask.
    pub asks_ext: bool,
}

/// What a responder adds to an ack when the probe asks for it and has room: see the module
/// comment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckExt {
    /// Probes of this session its socket dropped for want of buffer space (saturating).
    pub host_drops: u32,
    /// From its join to this session's first probe, when that came by multicast.
    pub join_delay_ns: Option<u64>,
    /// From its join to this probe's arrival.
    pub member_ns: Option<u64>,
    /// Probes from the prober's address that reached the responder's host but not its socket
    /// (its packet tap's count, cumulative); `None` when it has no tap, or predates the field.
    pub filtered: Option<u32>,
    /// Multicast probes from the prober's address that reached the responder's socket (all
    /// sessions, cumulative); `None` when not known (a responder older than the field).
    pub heard: Option<u32>,
    /// The group the responder serves: set in acks to unicast probes (multicast ones came to
    /// the prober's group), travels only when the whole name fits too; `None` when it did not,
    /// or the responder predates the field.
    pub group: Option<IpAddr>,
    /// The latest join and leave delay of `group` (`respond --churn`): travels only with the
    /// group and when the whole name fits too; `None` otherwise, or from older responders.
    pub join_leave: Option<GroupDelays>,
    /// A ramping responder's memberships (`respond --ramp`): travels only with the group and
    /// the join/leave record (a zero one when `join_leave` is `None`: it then decodes as
    /// `Some` of the default), when the whole name fits too.
    pub memberships: Option<Memberships>,
}

/// Why a responder's kernel refused a membership, as the memberships record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MembershipRefusal {
    /// ENOBUFS: a socket's membership count or option memory.
    SocketLimit,
    /// EMFILE or ENFILE.
    Files,
    /// ENOMEM.
    Memory,
    /// Anything else (or a code a later version added).
    Other,
}

/// A ramping responder's memberships so far (see the module comment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Memberships {
    /// Groups of its list joined, in the list's order.
    pub joined: u32,
    /// Memberships its kernel refused (saturating).
    pub refused: u32,
    /// Why the first was refused (`None`: none refused).
    pub refusal: Option<MembershipRefusal>,
    /// Probes of its canary group that reached its interface (`None`: not watched).
    pub canary: Option<u32>,
    /// Groups it had joined when the first canary probe arrived (`None`: none arrived).
    pub flood_at: Option<u32>,
}

impl Memberships {
    fn refusal_byte(&self) -> u8 {
        match self.refusal {
            None => 0,
            Some(MembershipRefusal::SocketLimit) => 1,
            Some(MembershipRefusal::Files) => 2,
            Some(MembershipRefusal::Memory) => 3,
            Some(MembershipRefusal::Other) => 255,
        }
    }

    fn refusal_of(b: u8) -> Option<MembershipRefusal> {
        match b {
            0 => None,
            1 => Some(MembershipRefusal::SocketLimit),
            2 => Some(MembershipRefusal::Files),
            3 => Some(MembershipRefusal::Memory),
            _ => Some(MembershipRefusal::Other),
        }
    }
}

/// One join's or leave's delay, as a responder reports it (see the module comment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DelayFigure {
    /// None measured yet (or a state a later version added).
    #[default]
    None,
    /// The delay, ns.
    Measured(u64),
    /// Join: the group arrived before the join (the LAN floods it): no join delay.
    AlreadyArriving,
    /// Join: the group never arrived while joined.
    NeverArrived,
    /// Leave: no probe of the group arrived after the leave.
    NoneAfter,
    /// Leave: the group kept arriving until the next join or the end (the LAN floods it).
    StillArriving,
    /// The responder cannot measure it (a leave without a packet tap).
    NotMeasurable,
    /// Join: the prober started sending the group after the join (the responder's first joins,
    /// before the prober ran): no join delay.
    StartedAfter,
}

impl DelayFigure {
    fn to_wire(self) -> (u8, u64) {
        match self {
            DelayFigure::None => (0, 0),
            DelayFigure::Measured(ns) => (1, ns),
            DelayFigure::AlreadyArriving => (2, 0),
            DelayFigure::NeverArrived => (3, 0),
            DelayFigure::NoneAfter => (4, 0),
            DelayFigure::StillArriving => (5, 0),
            DelayFigure::NotMeasurable => (6, 0),
            DelayFigure::StartedAfter => (7, 0),
        }
    }

    fn from_wire(state: u8, ns: u64) -> Self {
        match state {
            1 => DelayFigure::Measured(ns),
            2 => DelayFigure::AlreadyArriving,
            3 => DelayFigure::NeverArrived,
            4 => DelayFigure::NoneAfter,
            5 => DelayFigure::StillArriving,
            6 => DelayFigure::NotMeasurable,
            7 => DelayFigure::StartedAfter,
            _ => DelayFigure::None,
        }
    }
}

/// Where a responder's join and leave instants come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DelayClock {
    #[default]
    Unknown,
    /// Kernel timestamps of the report and the probes at the interface (a packet tap).
    Interface,
    /// The time of the join system call: two or more kernel ticks before the report leaves.
    Syscall,
}

/// The latest join and leave delay of one group at a responder: travels with the group it is
/// about (the ack's probe's), when there is room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct GroupDelays {
    /// Joins of the group measured so far (saturating).
    pub joins: u32,
    pub join: DelayFigure,
    pub leave: DelayFigure,
    pub clock: DelayClock,
}

/// An ack as a responder sends it back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ack {
    pub session: u64,
    pub seq: u64,
    pub tx_ns: u64,
    pub responder: u64,
    pub rx_ns: u64,
    pub dwell_ns: u32,
    /// Low 32 bits of the responder's received count; see [`unwrap_counter`].
    pub received: u32,
    pub ack_seq: u32,
    pub limited: u32,
    pub ttl: u8,
    pub arrival: Arrival,
    /// `None` when the probe did not ask for it or had no room, or the responder predates it.
    pub ext: Option<AckExt>,
    /// Empty when the probe was too small to carry it, or the responder has none.
    pub name: String,
}

/// Why a responder does not answer a probe, as a notice says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeReason {
    /// The probe carried no tag, and this responder has a key.
    KeyNeeded,
    /// The probe's tag does not verify with this responder's key: another key, or a copy of a
    /// probe sent to a group, port or source it was not made for.
    KeyMismatch,
    /// A reason a later version added.
    Other(u8),
}

impl NoticeReason {
    fn to_byte(self) -> u8 {
        match self {
            NoticeReason::KeyNeeded => 1,
            NoticeReason::KeyMismatch => 2,
            NoticeReason::Other(b) => b,
        }
    }

    fn from_byte(b: u8) -> Self {
        match b {
            1 => NoticeReason::KeyNeeded,
            2 => NoticeReason::KeyMismatch,
            other => NoticeReason::Other(other),
        }
    }
}

/// A responder's notice to a prober whose probe it refused: see "Notices" in the module comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    pub session: u64,
    pub seq: u64,
    pub tx_ns: u64,
    pub responder: u64,
    pub reason: NoticeReason,
}

impl Notice {
    /// Appends the notice to `buf` (cleared first): [`NOTICE_LEN`] bytes.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.clear();
        header(buf, TYPE_NOTICE, 0);
        for v in [self.session, self.seq, self.tx_ns, self.responder] {
            buf.extend_from_slice(&v.to_be_bytes());
        }
        buf.push(self.reason.to_byte());
    }
}

/// Whether a datagram says it is keyed (flag bit 1), whatever its tag.
pub(crate) fn is_keyed(datagram: &[u8]) -> bool {
    datagram.get(FLAG_OFFSET).is_some_and(|f| f & FLAG_AUTH != 0)
}

/// Whether a probe (its whole datagram) asks for notices. A keyed probe's tag is not padding.
pub(crate) fn asks_notice(probe: &[u8]) -> bool {
    let body = if is_keyed(probe) { &probe[..probe.len().saturating_sub(TAG_LEN)] } else { probe };
    body.get(ASKS_OFFSET).is_some_and(|b| b & ASKS_NOTICE != 0)
}

/// A decoded mcprobe datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Probe(Probe),
    Ack(Ack),
    Notice(Notice),
}

/// Why a datagram is not a valid mcprobe message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the header or than its type's fixed body.
    Truncated { need: usize, got: usize },
    /// Does not start with [`MAGIC`]: not mcprobe traffic at all.
    BadMagic,
    /// An mcprobe version this build does not speak.
    Version(u8),
    /// An unknown message type.
    Type(u8),
    /// A field holds a value the format forbids (reserved flag bits, bad name, …).
    BadField(&'static str, u64),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated { need, got } => {
                write!(f, "truncated: need {need} bytes, got {got}")
            }
            DecodeError::BadMagic => write!(f, "not an mcprobe datagram"),
            DecodeError::Version(v) => write!(f, "unsupported mcprobe version {v}"),
            DecodeError::Type(t) => write!(f, "unknown message type {t}"),
            DecodeError::BadField(name, v) => write!(f, "invalid {name} ({v})"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn header(buf: &mut Vec<u8>, kind: u8, flags: u8) {
    buf.extend_from_slice(&MAGIC);
    buf.push(VERSION);
    buf.push(kind);
    buf.push(flags);
}

impl Probe {
    /// Appends the probe to `buf`, zero-padded to `size` bytes (at least [`PROBE_LEN`]).
    pub fn encode_into(&self, size: usize, buf: &mut Vec<u8>) {
        let start = buf.len();
        header(buf, TYPE_PROBE, 0);
        buf.extend_from_slice(&self.session.to_be_bytes());
        buf.extend_from_slice(&self.seq.to_be_bytes());
        buf.extend_from_slice(&self.tx_ns.to_be_bytes());
        let target = start + size.max(PROBE_LEN);
        buf.resize(target, 0);
        if size > PROBE_LEN {
            buf[start + ASKS_OFFSET] = ASKS_NOTICE | if self.asks_ext { ASKS_EXT } else { 0 };
        }
    }

    pub fn encode(&self, size: usize) -> Vec<u8> {
        let mut buf = Vec::with_capacity(size.max(PROBE_LEN));
        self.encode_into(size, &mut buf);
        buf
    }
}

impl Ack {
    /// Encodes the ack in at most `limit` bytes, the length of the probe being answered.
    /// The name is truncated (at a character boundary) or left out to fit; `None` when even the
    /// fixed part does not fit, in which case the probe must not be answered.
    pub fn encode_within(&self, limit: usize) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        self.encode_within_into(limit, &mut buf).then_some(buf)
    }

    /// Like [`encode_within`](Self::encode_within), into `buf` (cleared first), so a responder
    /// reuses one buffer for every ack. `false`, with `buf` empty, when the fixed part does not fit.
    pub(crate) fn encode_within_into(&self, limit: usize, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        if limit < ACK_FIXED_LEN {
            return false;
        }
        // The extension first (it is what the prober asked for), the name in what is left.
        let ext = self.ext.filter(|_| limit >= ACK_FIXED_LEN + 1 + EXT_LEN);
        // The group only where it costs the name nothing: names label every row.
        let name_len = if self.name.is_empty() { 0 } else { 1 + self.name.len().min(MAX_NAME_LEN) };
        let group = ext.and_then(|e| e.group).filter(|_| limit >= ACK_FIXED_LEN + 1 + EXT_GROUP_LEN + name_len);
        let join_leave = (ext.and_then(|e| e.join_leave).filter(|_| group.is_some()))
            .filter(|_| limit >= ACK_FIXED_LEN + 1 + EXT_JOIN_LEAVE_LEN + name_len);
        // The memberships record after the join/leave record (a zero one when there is none).
        let memberships = (ext.and_then(|e| e.memberships).filter(|_| group.is_some()))
            .filter(|_| limit >= ACK_FIXED_LEN + 1 + EXT_MEMBERSHIPS_LEN + name_len);
        let join_leave = join_leave.or(memberships.map(|_| GroupDelays::default()));
        let ext_len = match (group, join_leave, memberships) {
            (Some(_), Some(_), Some(_)) => EXT_MEMBERSHIPS_LEN,
            (Some(_), Some(_), None) => EXT_JOIN_LEAVE_LEN,
            (Some(_), None, _) => EXT_GROUP_LEN,
            _ => EXT_LEN,
        };
        let used = ACK_FIXED_LEN + if ext.is_some() { 1 + ext_len } else { 0 };
        let room = limit.saturating_sub(used + 1).min(MAX_NAME_LEN);
        let name = truncate_utf8(&self.name, room);
        let flags = if name.is_empty() { 0 } else { FLAG_NAME } | if ext.is_some() { FLAG_EXT } else { 0 };
        buf.reserve(used + 1 + name.len() + TAG_LEN);
        header(buf, TYPE_ACK, flags);
        for v in [self.session, self.seq, self.tx_ns, self.responder, self.rx_ns] {
            buf.extend_from_slice(&v.to_be_bytes());
        }
        for v in [self.dwell_ns, self.received, self.ack_seq, self.limited] {
            buf.extend_from_slice(&v.to_be_bytes());
        }
        buf.push(self.ttl);
        buf.push(self.arrival.to_byte());
        if let Some(e) = ext {
            buf.push(ext_len as u8);
            buf.extend_from_slice(&e.host_drops.to_be_bytes());
            for v in [e.join_delay_ns, e.member_ns] {
                buf.extend_from_slice(&v.unwrap_or(UNKNOWN_NS).to_be_bytes());
            }
            buf.extend_from_slice(&e.filtered.unwrap_or(u32::MAX).to_be_bytes());
            buf.extend_from_slice(&e.heard.unwrap_or(u32::MAX).to_be_bytes());
            if let Some(g) = group {
                let mut addr = [0u8; 16];
                let family = match g {
                    IpAddr::V4(a) => {
                        addr[..4].copy_from_slice(&a.octets());
                        4
                    }
                    IpAddr::V6(a) => {
                        addr = a.octets();
                        6
                    }
                };
                buf.push(family);
                buf.extend_from_slice(&addr);
            }
            if let Some(jl) = join_leave {
                buf.extend_from_slice(&jl.joins.to_be_bytes());
                for f in [jl.join, jl.leave] {
                    let (state, ns) = f.to_wire();
                    buf.push(state);
                    buf.extend_from_slice(&ns.to_be_bytes());
                }
                buf.push(match jl.clock {
                    DelayClock::Unknown => 0,
                    DelayClock::Interface => 1,
                    DelayClock::Syscall => 2,
                });
            }
            if let Some(m) = memberships {
                buf.extend_from_slice(&m.joined.to_be_bytes());
                buf.extend_from_slice(&m.refused.to_be_bytes());
                buf.push(m.refusal_byte());
                buf.extend_from_slice(&m.canary.unwrap_or(u32::MAX).to_be_bytes());
                buf.extend_from_slice(&m.flood_at.unwrap_or(u32::MAX).to_be_bytes());
            }
        }
        if !name.is_empty() {
            buf.push(name.len() as u8);
            buf.extend_from_slice(name.as_bytes());
        }
        true
    }
}

/// The extension's group field: a family byte and 16 bytes of address. A family other than 4
/// or 6, or an IPv4 address with bytes after its four, is invalid.
fn read_group(family: u8, addr: &[u8]) -> Result<Option<IpAddr>, DecodeError> {
    match family {
        4 if addr[4..].iter().all(|&b| b == 0) => {
            Ok(Some(IpAddr::from(<[u8; 4]>::try_from(&addr[..4]).expect("4 bytes"))))
        }
        6 => Ok(Some(IpAddr::from(<[u8; 16]>::try_from(addr).expect("16 bytes")))),
        4 => Err(DecodeError::BadField("group address (IPv4 with more than 4 bytes)", 4)),
        other => Err(DecodeError::BadField("group family", u64::from(other))),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A bounds-checked big-endian reader: every read either succeeds or reports truncation.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(DecodeError::Truncated { need: self.pos.saturating_add(n), got: self.buf.len() })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
}

/// Decodes one datagram. Never panics.
pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    let magic_len = buf.len().min(MAGIC.len());
    if buf[..magic_len] != MAGIC[..magic_len] {
        return Err(DecodeError::BadMagic);
    }
    // What is there is an mcprobe prefix; a short datagram is a truncated one.
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::Truncated { need: HEADER_LEN, got: buf.len() });
    }
    let mut r = Reader { buf, pos: MAGIC.len() };
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let kind = r.u8()?;
    let flags = r.u8()?;
    // A keyed datagram's tag is not part of the message: parse what is before it.
    let buf = if flags & FLAG_AUTH != 0 {
        if buf.len() < HEADER_LEN + TAG_LEN {
            return Err(DecodeError::Truncated { need: HEADER_LEN + TAG_LEN, got: buf.len() });
        }
        &buf[..buf.len() - TAG_LEN]
    } else {
        buf
    };
    let flags = flags & !FLAG_AUTH;
    let mut r = Reader { buf, pos: r.pos };
    match kind {
        TYPE_PROBE => {
            if flags != 0 {
                return Err(DecodeError::BadField("probe flags", flags as u64));
            }
            let (session, seq, tx_ns) = (r.u64()?, r.u64()?, r.u64()?);
            // Padding is not checked: version 1 sent zeros, and later bits may mean more.
            let asks_ext = buf.get(ASKS_OFFSET).is_some_and(|b| b & ASKS_EXT != 0);
            Ok(Message::Probe(Probe { session, seq, tx_ns, asks_ext }))
        }
        TYPE_ACK => {
            if flags & !(FLAG_NAME | FLAG_EXT) != 0 {
                return Err(DecodeError::BadField("ack flags", flags as u64));
            }
            let (session, seq, tx_ns, responder, rx_ns) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?);
            let (dwell_ns, received, ack_seq, limited) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
            let ttl = r.u8()?;
            let arrival = Arrival::from_byte(r.u8()?)?;
            let ext = if flags & FLAG_EXT != 0 {
                let len = r.u8()? as usize;
                if len < EXT_MIN_LEN {
                    return Err(DecodeError::BadField("extension length", len as u64));
                }
                let mut e = Reader { buf: r.take(len)?, pos: 0 };
                let known = |ns: u64| (ns != UNKNOWN_NS).then_some(ns);
                let (host_drops, join_delay_ns, member_ns) = (e.u32()?, known(e.u64()?), known(e.u64()?));
                // A field a responder of its time did not write is not known.
                let known32 = |n: u32| (n != u32::MAX).then_some(n);
                let filtered = if len >= EXT_FILTERED_LEN { known32(e.u32()?) } else { None };
                let heard = if len >= EXT_LEN { known32(e.u32()?) } else { None };
                let group = if len >= EXT_GROUP_LEN { read_group(e.u8()?, e.take(16)?)? } else { None };
                let join_leave = if len >= EXT_JOIN_LEAVE_LEN {
                    let joins = e.u32()?;
                    let join = DelayFigure::from_wire(e.u8()?, e.u64()?);
                    let leave = DelayFigure::from_wire(e.u8()?, e.u64()?);
                    let clock = match e.u8()? {
                        1 => DelayClock::Interface,
                        2 => DelayClock::Syscall,
                        _ => DelayClock::Unknown,
                    };
                    Some(GroupDelays { joins, join, leave, clock })
                } else {
                    None
                };
                let memberships = if len >= EXT_MEMBERSHIPS_LEN {
                    let (joined, refused, refusal) = (e.u32()?, e.u32()?, Memberships::refusal_of(e.u8()?));
                    let (canary, flood_at) = (known32(e.u32()?), known32(e.u32()?));
                    Some(Memberships { joined, refused, refusal, canary, flood_at })
                } else {
                    None
                };
                Some(AckExt { host_drops, join_delay_ns, member_ns, filtered, heard, group, join_leave, memberships })
            } else {
                None
            };
            let name = if flags & FLAG_NAME != 0 {
                let len = r.u8()? as usize;
                if len == 0 || len > MAX_NAME_LEN {
                    return Err(DecodeError::BadField("name length", len as u64));
                }
                let bytes = r.take(len)?;
                let name =
                    std::str::from_utf8(bytes).map_err(|_| DecodeError::BadField("name (not UTF-8)", len as u64))?;
                name.to_owned()
            } else {
                String::new()
            };
            if r.pos != buf.len() {
                return Err(DecodeError::BadField("trailing bytes", (buf.len() - r.pos) as u64));
            }
            Ok(Message::Ack(Ack {
                session,
                seq,
                tx_ns,
                responder,
                rx_ns,
                dwell_ns,
                received,
                ack_seq,
                limited,
                ttl,
                arrival,
                ext,
                name,
            }))
        }
        TYPE_NOTICE => {
            if flags != 0 {
                return Err(DecodeError::BadField("notice flags", flags as u64));
            }
            let (session, seq, tx_ns, responder) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
            let reason = NoticeReason::from_byte(r.u8()?);
            // Bytes past the known fields are a later version's: skipped, like the extension's.
            Ok(Message::Notice(Notice { session, seq, tx_ns, responder, reason }))
        }
        other => Err(DecodeError::Type(other)),
    }
}

/// Restores a 32-bit wire counter to its full value, given an upper bound it cannot exceed.
///
/// The responder's counters (received, ack_seq, limited) only grow and never exceed the number of
/// probes sent so far, `seq + 1`. The full value is therefore the largest number `<= bound` whose
/// low 32 bits equal `low`. This is exact as long as the true value is within 2^32 of the bound,
/// i.e. fewer than ~4.29 billion probes were lost, which a single run cannot reach.
pub(crate) fn unwrap_counter(low: u32, bound: u64) -> u64 {
    let base = bound & !0xFFFF_FFFF;
    let candidate = base | low as u64;
    if candidate <= bound {
        candidate
    } else {
        // The true value is in the previous 2^32 block; with bound < 2^32 this clamps to `low`,
        // which can only happen when the responder's count is inconsistent (duplicated probes).
        candidate.checked_sub(1 << 32).unwrap_or(low as u64)
    }
}

/// The version-1 format, kept for the pairing tests (`crate::compat_tests`).
#[cfg(test)]
pub(crate) mod v1;

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(name: &str) -> Ack {
        Ack {
            session: 0x0102_0304_0506_0708,
            seq: 42,
            tx_ns: 1_700_000_000_000_000_000,
            responder: 0xdead_beef,
            rx_ns: 1_700_000_000_000_050_000,
            dwell_ns: 1234,
            received: 40,
            ack_seq: 39,
            limited: 1,
            ttl: 64,
            arrival: Arrival::Multicast,
            ext: None,
            name: name.to_owned(),
        }
    }

    #[test]
    fn probe_round_trips_and_pads() {
        let p = Probe { session: 7, seq: u64::MAX, tx_ns: 99, asks_ext: false };
        let bytes = p.encode(128);
        assert_eq!(bytes.len(), 128);
        assert_eq!(decode(&bytes), Ok(Message::Probe(p.clone())));
        // Asking for less than the fixed part still yields a valid probe.
        assert_eq!(p.encode(0).len(), PROBE_LEN);
    }

    #[test]
    fn ack_fixed_part_is_64_bytes() {
        let bytes = ack("").encode_within(64).unwrap();
        assert_eq!(bytes.len(), ACK_FIXED_LEN);
        assert_eq!(decode(&bytes), Ok(Message::Ack(ack(""))));
    }

    #[test]
    fn ack_never_exceeds_the_limit() {
        let a = ack("host-with-a-rather-long-name.example.org");
        assert_eq!(a.encode_within(63), None);
        for limit in 64..200 {
            let bytes = a.encode_within(limit).unwrap();
            assert!(bytes.len() <= limit, "limit {limit} gave {}", bytes.len());
            let Message::Ack(back) = decode(&bytes).unwrap() else { panic!("not an ack") };
            assert!(a.name.starts_with(&back.name));
        }
        let full = a.encode_within(200).unwrap();
        assert_eq!(decode(&full), Ok(Message::Ack(a.clone())));
        // Into a reused buffer: the same bytes, and nothing left over from a longer ack before.
        let mut buf = vec![0xAA; 300];
        assert!(a.encode_within_into(64, &mut buf));
        assert_eq!(buf, a.encode_within(64).unwrap());
        assert!(!a.encode_within_into(63, &mut buf) && buf.is_empty());
    }

    #[test]
    fn the_extension_has_its_documented_layout_and_later_fields_are_skipped() {
        let ext = AckExt {
            host_drops: 0x0102_0304,
            join_delay_ns: Some(5),
            member_ns: None,
            filtered: Some(7),
            heard: Some(9),
            group: None,
            join_leave: None,
            memberships: None,
        };
        let a = Ack { ext: Some(ext), ..ack("") };
        let bytes = a.encode_within(200).unwrap();
        assert_eq!(bytes.len(), ACK_FIXED_LEN + 1 + EXT_LEN);
        assert_eq!(bytes[FLAG_OFFSET], FLAG_EXT);
        assert_eq!(bytes[64..69], [28, 1, 2, 3, 4]);
        assert_eq!(bytes[69..77], 5u64.to_be_bytes());
        assert_eq!(bytes[77..85], [0xff; 8]);
        assert_eq!(bytes[85..89], 7u32.to_be_bytes());
        assert_eq!(bytes[89..93], 9u32.to_be_bytes());
        assert_eq!(decode(&bytes), Ok(Message::Ack(a.clone())));
        // A responder from before `heard`: 24 bytes of extension, the field not known.
        let mut before_heard = bytes[..64].to_vec();
        before_heard.push(EXT_FILTERED_LEN as u8);
        before_heard.extend_from_slice(&bytes[65..89]);
        let Ok(Message::Ack(back)) = decode(&before_heard) else { panic!("the older extension decodes") };
        assert_eq!(back.ext, Some(AckExt { heard: None, ..ext }));
        // Not watched: all ones, read back as not known.
        let unwatched = Ack { ext: Some(AckExt { filtered: None, ..ext }), ..ack("") };
        let bytes_unwatched = unwatched.encode_within(200).unwrap();
        assert_eq!(bytes_unwatched[85..89], [0xff; 4]);
        assert_eq!(decode(&bytes_unwatched), Ok(Message::Ack(unwatched)));
        // A responder from before `filtered`: 20 bytes of extension, the field not known.
        let mut older = bytes[..64].to_vec();
        older.push(EXT_MIN_LEN as u8);
        older.extend_from_slice(&bytes[65..85]);
        let Ok(Message::Ack(back)) = decode(&older) else { panic!("the older extension decodes") };
        assert_eq!(back.ext, Some(AckExt { filtered: None, heard: None, ..ext }));
        // A later responder's longer extension: the known fields are read, the rest skipped.
        let mut longer = bytes[..64].to_vec();
        longer.push(EXT_LEN as u8 + 3);
        longer.extend_from_slice(&bytes[65..]);
        longer.extend_from_slice(&[9, 9, 9]);
        assert_eq!(decode(&longer), Ok(Message::Ack(a)));
        // Shorter than the first fields: refused, not guessed at.
        let mut short = older.clone();
        short[64] = EXT_MIN_LEN as u8 - 1;
        short.pop();
        assert!(matches!(decode(&short), Err(DecodeError::BadField("extension length", 19))));
    }

    #[test]
    fn the_join_leave_record_follows_the_group_and_older_decoders_skip_it() {
        let g: IpAddr = "239.1.1.7".parse().unwrap();
        let jl = GroupDelays {
            joins: 3,
            join: DelayFigure::Measured(1_500_000),
            leave: DelayFigure::StillArriving,
            clock: DelayClock::Interface,
        };
        let ext = AckExt { group: Some(g), join_leave: Some(jl), ..AckExt::default() };
        let a = Ack { ext: Some(ext), arrival: Arrival::Multicast, ..ack("h2") };
        let bytes = a.encode_within(ACK_FIXED_LEN + 1 + EXT_JOIN_LEAVE_LEN + 3).unwrap();
        assert_eq!(bytes.len(), ACK_FIXED_LEN + 1 + EXT_JOIN_LEAVE_LEN + 3);
        assert_eq!(bytes[64], 68);
        assert_eq!(bytes[93..98], [4, 239, 1, 1, 7]);
        assert_eq!(bytes[110..114], 3u32.to_be_bytes());
        assert_eq!(bytes[114], 1);
        assert_eq!(bytes[115..123], 1_500_000u64.to_be_bytes());
        assert_eq!((bytes[123], &bytes[124..132], bytes[132]), (5, &[0u8; 8][..], 1));
        assert_eq!(decode(&bytes), Ok(Message::Ack(a.clone())));
        // A decoder from before the record reads the extension up to the group and skips the
        // rest (as this one skips a later version's fields): the same ack, less the record.
        let mut before = bytes[..ACK_FIXED_LEN + 1 + EXT_GROUP_LEN].to_vec();
        before[64] = EXT_GROUP_LEN as u8;
        before.extend_from_slice(&bytes[ACK_FIXED_LEN + 1 + EXT_JOIN_LEAVE_LEN..]);
        let Ok(Message::Ack(back)) = decode(&before) else { panic!("decodes") };
        assert_eq!(back.ext, Some(AckExt { join_leave: None, ..ext }));
        // A state a later version adds reads as none; a record without its group is not sent.
        let mut later = bytes.clone();
        later[114] = 8;
        let Ok(Message::Ack(back)) = decode(&later) else { panic!("decodes") };
        assert_eq!(back.ext.unwrap().join_leave.unwrap().join, DelayFigure::None);
        let alone = Ack { ext: Some(AckExt { group: None, ..ext }), ..a.clone() };
        assert_eq!(alone.encode_within(400).unwrap()[64], EXT_LEN as u8);
        // One byte short of the record and the whole name: the name stays, the record goes.
        let tight = a.encode_within(ACK_FIXED_LEN + 1 + EXT_JOIN_LEAVE_LEN + 2).unwrap();
        assert_eq!(tight[64] as usize, EXT_GROUP_LEN);
    }

    #[test]
    fn the_memberships_record_follows_the_join_leave_record_and_older_decoders_skip_it() {
        let g: IpAddr = "239.9.0.1".parse().unwrap();
        let m = Memberships {
            joined: 58,
            refused: 2,
            refusal: Some(MembershipRefusal::SocketLimit),
            canary: Some(7),
            flood_at: Some(56),
        };
        let ext = AckExt { group: Some(g), memberships: Some(m), ..AckExt::default() };
        let a = Ack { ext: Some(ext), arrival: Arrival::Multicast, ..ack("h2") };
        let bytes = a.encode_within(ACK_FIXED_LEN + 1 + EXT_MEMBERSHIPS_LEN + 3).unwrap();
        assert_eq!(bytes.len(), ACK_FIXED_LEN + 1 + EXT_MEMBERSHIPS_LEN + 3);
        assert_eq!(bytes[64], 85);
        // No join/leave record to tell: a zero one holds its place.
        assert!(bytes[110..133].iter().all(|&b| b == 0));
        assert_eq!(bytes[133..137], 58u32.to_be_bytes());
        assert_eq!(bytes[137..141], 2u32.to_be_bytes());
        assert_eq!(bytes[141], 1);
        assert_eq!(bytes[142..146], 7u32.to_be_bytes());
        assert_eq!(bytes[146..150], 56u32.to_be_bytes());
        let Ok(Message::Ack(back)) = decode(&bytes) else { panic!("decodes") };
        assert_eq!(back.ext, Some(AckExt { join_leave: Some(GroupDelays::default()), ..ext }));
        // A decoder from before it reads up to the join/leave record and skips the rest.
        let mut before = bytes[..ACK_FIXED_LEN + 1 + EXT_JOIN_LEAVE_LEN].to_vec();
        before[64] = EXT_JOIN_LEAVE_LEN as u8;
        before.extend_from_slice(&bytes[ACK_FIXED_LEN + 1 + EXT_MEMBERSHIPS_LEN..]);
        let Ok(Message::Ack(older)) = decode(&before) else { panic!("decodes") };
        assert_eq!(older.ext.unwrap().memberships, None);
        // Unwatched canary, a refusal code a later version adds.
        let mut later = bytes.clone();
        later[141] = 9;
        later[142..146].copy_from_slice(&u32::MAX.to_be_bytes());
        let Ok(Message::Ack(back)) = decode(&later) else { panic!("decodes") };
        let got = back.ext.unwrap().memberships.unwrap();
        assert_eq!((got.refusal, got.canary), (Some(MembershipRefusal::Other), None));
        // Without its group, or without room for it and the whole name, it is not sent.
        let alone = Ack { ext: Some(AckExt { group: None, ..ext }), ..a.clone() };
        assert_eq!(alone.encode_within(400).unwrap()[64], EXT_LEN as u8);
        let tight = a.encode_within(ACK_FIXED_LEN + 1 + EXT_MEMBERSHIPS_LEN + 2).unwrap();
        assert_eq!(tight[64] as usize, EXT_GROUP_LEN);
    }

    #[test]
    fn acks_to_unicast_probes_say_the_group_where_it_costs_the_name_nothing() {
        let v4: IpAddr = "239.255.42.42".parse().unwrap();
        let ext = AckExt { group: Some(v4), ..AckExt::default() };
        let a = Ack { ext: Some(ext), arrival: Arrival::Unicast, ..ack("h2") };
        let bytes = a.encode_within(200).unwrap();
        assert_eq!(bytes.len(), ACK_FIXED_LEN + 1 + EXT_GROUP_LEN + 1 + 2);
        assert_eq!(bytes[64], EXT_GROUP_LEN as u8);
        assert_eq!(bytes[93..98], [4, 239, 255, 42, 42]);
        assert_eq!(bytes[98..110], [0; 12]);
        assert_eq!(decode(&bytes), Ok(Message::Ack(a.clone())));
        let v6: IpAddr = "ff12::4242".parse().unwrap();
        let a6 = Ack { ext: Some(AckExt { group: Some(v6), ..ext }), ..a.clone() };
        assert_eq!(decode(&a6.encode_within(200).unwrap()), Ok(Message::Ack(a6)));
        // One byte short of the group and the whole name: the name stays, the group goes.
        let tight = a.encode_within(ACK_FIXED_LEN + 1 + EXT_GROUP_LEN + 2).unwrap();
        assert_eq!((tight[64] as usize, tight.len()), (EXT_LEN, ACK_FIXED_LEN + 1 + EXT_LEN + 3));
        let Ok(Message::Ack(back)) = decode(&tight) else { panic!("decodes") };
        assert_eq!((back.name.as_str(), back.ext.unwrap().group), ("h2", None));
        // A family that is neither 4 nor 6, or an IPv4 address with more bytes: refused.
        for (at, byte) in [(93, 5u8), (104, 1u8)] {
            let mut bad = bytes.clone();
            bad[at] = byte;
            assert!(matches!(decode(&bad), Err(DecodeError::BadField(..))), "byte {at} = {byte}");
        }
    }

    #[test]
    fn a_probe_asks_for_the_extension_in_its_first_padding_byte() {
        let p = Probe { session: 1, seq: 2, tx_ns: 3, asks_ext: true };
        let bytes = p.encode(64);
        assert_eq!((bytes[ASKS_OFFSET], &bytes[ASKS_OFFSET + 1..]), (ASKS_EXT | ASKS_NOTICE, &[0u8; 33][..]));
        assert_eq!(decode(&bytes), Ok(Message::Probe(p)));
        // Every probe asks for notices; only the extension is asked for per probe.
        let plain = Probe { session: 1, seq: 2, tx_ns: 3, asks_ext: false };
        assert_eq!(plain.encode(64)[ASKS_OFFSET], ASKS_NOTICE);
        assert!(plain.encode(64)[ASKS_OFFSET + 1..].iter().all(|&b| b == 0));
        assert!(asks_notice(&plain.encode(64)) && !asks_notice(&plain.encode(PROBE_LEN)));
        // A keyed probe without padding: the tag's bytes are not an `asks` byte.
        let mut keyed = plain.encode(PROBE_LEN);
        keyed[FLAG_OFFSET] |= FLAG_AUTH;
        keyed.extend_from_slice(&[0xff; TAG_LEN]);
        assert!(!asks_notice(&keyed));
    }

    #[test]
    fn notices_have_their_documented_layout_and_later_fields_are_skipped() {
        let n = Notice { session: 7, seq: 8, tx_ns: 9, responder: 10, reason: NoticeReason::KeyMismatch };
        let mut bytes = Vec::new();
        n.encode_into(&mut bytes);
        assert_eq!(bytes.len(), NOTICE_LEN);
        assert_eq!((bytes[4], bytes[5], bytes[38]), (TYPE_NOTICE, 0, 2));
        assert_eq!(bytes[30..38], 10u64.to_be_bytes());
        assert_eq!(decode(&bytes), Ok(Message::Notice(n)));
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[1, 2, 3]);
        assert_eq!(decode(&longer), Ok(Message::Notice(n)));
        bytes[38] = 1;
        assert!(matches!(decode(&bytes), Ok(Message::Notice(Notice { reason: NoticeReason::KeyNeeded, .. }))));
        bytes[38] = 77;
        assert!(matches!(decode(&bytes), Ok(Message::Notice(Notice { reason: NoticeReason::Other(77), .. }))));
        for cut in 0..NOTICE_LEN {
            assert!(decode(&bytes[..cut]).is_err(), "prefix of {cut} bytes accepted");
        }
        bytes[5] = 0x80;
        assert!(matches!(decode(&bytes), Err(DecodeError::BadField("notice flags", _))));
    }

    #[test]
    fn name_truncation_respects_utf8() {
        let a = ack("ééééé"); // 2 bytes each
        let bytes = a.encode_within(ACK_FIXED_LEN + 1 + 3).unwrap();
        let Message::Ack(back) = decode(&bytes).unwrap() else { panic!("not an ack") };
        assert_eq!(back.name, "é");
    }

    #[test]
    fn rejects_foreign_and_broken_datagrams() {
        assert_eq!(decode(b"ack"), Err(DecodeError::BadMagic));
        assert_eq!(decode(b""), Err(DecodeError::Truncated { need: 6, got: 0 }));
        assert_eq!(decode(b"MC"), Err(DecodeError::Truncated { need: 6, got: 2 }));
        let mut p = Probe { session: 1, seq: 2, tx_ns: 3, asks_ext: false }.encode(64);
        p[3] = 9;
        assert_eq!(decode(&p), Err(DecodeError::Version(9)));
        p[3] = VERSION;
        p[4] = 7;
        assert_eq!(decode(&p), Err(DecodeError::Type(7)));
        p[4] = TYPE_PROBE;
        p[5] = 0x80;
        assert!(matches!(decode(&p), Err(DecodeError::BadField(..))));
        let a = ack("x").encode_within(100).unwrap();
        let mut extra = a.clone();
        extra.push(0);
        assert!(matches!(decode(&extra), Err(DecodeError::BadField("trailing bytes", 1))));
        for cut in 0..a.len() {
            assert!(decode(&a[..cut]).is_err(), "prefix of {cut} bytes accepted");
        }
    }

    #[test]
    fn counters_unwrap_exactly() {
        assert_eq!(unwrap_counter(5, 10), 5);
        assert_eq!(unwrap_counter(10, 10), 10);
        let big = (3u64 << 32) + 100;
        assert_eq!(unwrap_counter(90, big), (3 << 32) + 90);
        // The counter is just below a wrap while the bound is just past it.
        assert_eq!(unwrap_counter(u32::MAX - 1, (1u64 << 32) + 5), (1u64 << 32) - 2);
    }
}
