//! The version-1 packet format exactly as mcprobe 0.1 spoke it (`src/wire.rs` before the ack
//! extension), kept verbatim for `compat_tests.rs`: an old prober or responder is this encoder and
//! decoder. Test-only; never edit it to follow the current format.
#![allow(dead_code)]

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
/// Smallest `--size` a prober may send: every responder can answer it, if without its name.
pub(crate) const MIN_PROBE_SIZE: usize = ACK_FIXED_LEN;
/// Largest UDP payload over IPv4.
pub(crate) const MAX_PROBE_SIZE: usize = 65_507;

const TYPE_PROBE: u8 = 1;
const TYPE_ACK: u8 = 2;
const FLAG_NAME: u8 = 0x01;
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
    /// Empty when the probe was too small to carry it, or the responder has none.
    pub name: String,
}

/// A decoded mcprobe datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Probe(Probe),
    Ack(Ack),
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
        let room = limit.saturating_sub(ACK_FIXED_LEN + 1).min(MAX_NAME_LEN);
        let name = truncate_utf8(&self.name, room);
        let flags = if name.is_empty() { 0 } else { FLAG_NAME };
        buf.reserve(ACK_FIXED_LEN + 1 + name.len() + TAG_LEN);
        header(buf, TYPE_ACK, flags);
        for v in [self.session, self.seq, self.tx_ns, self.responder, self.rx_ns] {
            buf.extend_from_slice(&v.to_be_bytes());
        }
        for v in [self.dwell_ns, self.received, self.ack_seq, self.limited] {
            buf.extend_from_slice(&v.to_be_bytes());
        }
        buf.push(self.ttl);
        buf.push(self.arrival.to_byte());
        if !name.is_empty() {
            buf.push(name.len() as u8);
            buf.extend_from_slice(name.as_bytes());
        }
        true
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
            Ok(Message::Probe(Probe { session: r.u64()?, seq: r.u64()?, tx_ns: r.u64()? }))
        }
        TYPE_ACK => {
            if flags & !FLAG_NAME != 0 {
                return Err(DecodeError::BadField("ack flags", flags as u64));
            }
            let (session, seq, tx_ns, responder, rx_ns) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?);
            let (dwell_ns, received, ack_seq, limited) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
            let ttl = r.u8()?;
            let arrival = Arrival::from_byte(r.u8()?)?;
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
                name,
            }))
        }
        other => Err(DecodeError::Type(other)),
    }
}
