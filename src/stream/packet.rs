//! A captured frame to the UDP datagram inside it: Ethernet (with VLAN tags), Linux cooked
//! captures (`tcpdump -i any`: SLL and SLL2), raw IP and BSD loopback; IPv4 and IPv6. Pure.
//! IP fragments are not reassembled (a stream's datagrams fit one packet each); they are
//! counted, as are frames that carry no UDP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// pcap link types (LINKTYPE_*).
pub const ETHERNET: u32 = 1;
pub const NULL: u32 = 0;
pub const LOOP: u32 = 108;
pub const RAW: u32 = 101;
pub const IPV4: u32 = 228;
pub const IPV6: u32 = 229;
pub const LINUX_SLL: u32 = 113;
pub const LINUX_SLL2: u32 = 276;

/// A UDP datagram found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp<'a> {
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// Why a frame gave no datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not IP, or IP but not UDP.
    NotUdp,
    /// An IP fragment.
    Fragment,
    /// Cut short by the capture's snap length, or malformed.
    Truncated,
    /// A link type this reader does not know.
    LinkType,
}

/// The UDP datagram in a frame of link type `link`.
pub fn udp(link: u32, frame: &[u8]) -> Result<Udp<'_>, Skip> {
    let (ethertype, ip) = match link {
        ETHERNET => {
            let mut off = 12;
            let mut et = be16(frame, off).ok_or(Skip::Truncated)?;
            // 802.1Q and 802.1ad tags, stacked.
            while et == 0x8100 || et == 0x88a8 {
                off += 4;
                et = be16(frame, off).ok_or(Skip::Truncated)?;
            }
            (et, frame.get(off + 2..).ok_or(Skip::Truncated)?)
        }
        LINUX_SLL => (be16(frame, 14).ok_or(Skip::Truncated)?, frame.get(16..).ok_or(Skip::Truncated)?),
        LINUX_SLL2 => (be16(frame, 0).ok_or(Skip::Truncated)?, frame.get(20..).ok_or(Skip::Truncated)?),
        RAW | IPV4 | IPV6 => match frame.first().map(|b| b >> 4) {
            Some(4) => (0x0800, frame),
            Some(6) => (0x86dd, frame),
            _ => return Err(Skip::NotUdp),
        },
        NULL | LOOP => {
            let fam = frame.get(..4).ok_or(Skip::Truncated)?;
            // Host byte order for NULL, network for LOOP: AF_INET is 2 either way round;
            // AF_INET6 is 10, 24, 28 or 30 by system.
            let v = fam.iter().copied().max().unwrap_or(0);
            (if v == 2 { 0x0800 } else { 0x86dd }, &frame[4..])
        }
        _ => return Err(Skip::LinkType),
    };
    match ethertype {
        0x0800 => ipv4(ip),
        0x86dd => ipv6(ip),
        _ => Err(Skip::NotUdp),
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ipv4(p: &[u8]) -> Result<Udp<'_>, Skip> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return Err(Skip::Truncated);
    }
    let ihl = (p[0] & 0x0f) as usize * 4;
    let total = (be16(p, 2).ok_or(Skip::Truncated)? as usize).min(p.len());
    let frag = be16(p, 6).ok_or(Skip::Truncated)?;
    if p[9] != 17 {
        return Err(Skip::NotUdp);
    }
    if frag & 0x3fff != 0 {
        return Err(Skip::Fragment);
    }
    let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
    udp_in(src, dst, p.get(ihl..total).ok_or(Skip::Truncated)?)
}

fn ipv6(p: &[u8]) -> Result<Udp<'_>, Skip> {
    if p.len() < 40 {
        return Err(Skip::Truncated);
    }
    let addr = |at: usize| IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&p[at..at + 16]).expect("16 bytes")));
    let (src, dst) = (addr(8), addr(24));
    let end = (40 + be16(p, 4).ok_or(Skip::Truncated)? as usize).min(p.len());
    let (mut next, mut off) = (p[6], 40);
    loop {
        match next {
            17 => return udp_in(src, dst, p.get(off..end).ok_or(Skip::Truncated)?),
            44 => return Err(Skip::Fragment),
            // Hop-by-hop, routing, destination options: skip to the next header.
            0 | 43 | 60 => {
                let h = p.get(off..off + 2).ok_or(Skip::Truncated)?;
                next = h[0];
                off += 8 + 8 * h[1] as usize;
            }
            _ => return Err(Skip::NotUdp),
        }
    }
}

fn udp_in(src: IpAddr, dst: IpAddr, u: &[u8]) -> Result<Udp<'_>, Skip> {
    if u.len() < 8 {
        return Err(Skip::Truncated);
    }
    let len = be16(u, 4).ok_or(Skip::Truncated)? as usize;
    if len < 8 || len > u.len() {
        // A datagram longer than what was captured: its figures would be wrong.
        return Err(Skip::Truncated);
    }
    Ok(Udp {
        src,
        src_port: be16(u, 0).ok_or(Skip::Truncated)?,
        dst,
        dst_port: be16(u, 2).ok_or(Skip::Truncated)?,
        payload: &u[8..len],
    })
}

/// An Ethernet frame carrying `payload` in UDP over IPv4, for tests (checksums left zero).
pub fn ethernet_udp4(src: Ipv4Addr, src_port: u16, dst: Ipv4Addr, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x01, 0x00, 0x5e, 0, 0, 1, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (20 + 8 + payload.len()) as u16;
    f.extend([0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 1, 17, 0, 0]);
    f.extend(src.octets());
    f.extend(dst.octets());
    f.extend(src_port.to_be_bytes());
    f.extend(dst_port.to_be_bytes());
    f.extend(((8 + payload.len()) as u16).to_be_bytes());
    f.extend([0, 0]);
    f.extend(payload);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_vlan_cooked_and_raw_frames() {
        let (s, d) = (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(239, 1, 1, 1));
        let f = ethernet_udp4(s, 4000, d, 5000, b"payload");
        let u = udp(ETHERNET, &f).unwrap();
        assert_eq!(
            (u.src, u.src_port, u.dst, u.dst_port, u.payload),
            (s.into(), 4000, d.into(), 5000, &b"payload"[..])
        );
        // A VLAN tag.
        let mut v = f[..12].to_vec();
        v.extend([0x81, 0x00, 0x00, 0x0a]);
        v.extend(&f[12..]);
        assert_eq!(udp(ETHERNET, &v).unwrap().payload, b"payload");
        // Linux cooked (SLL): 16-byte header, protocol at 14.
        let mut c = vec![0u8; 14];
        c.extend([0x08, 0x00]);
        c.extend(&f[14..]);
        assert_eq!(udp(LINUX_SLL, &c).unwrap().dst_port, 5000);
        assert_eq!(udp(RAW, &f[14..]).unwrap().src_port, 4000);
        // Ethernet padding after a short datagram is not payload.
        let mut padded = ethernet_udp4(s, 1, d, 2, b"x");
        padded.extend([0; 17]);
        assert_eq!(udp(ETHERNET, &padded).unwrap().payload, b"x");
    }

    #[test]
    fn fragments_truncation_and_other_protocols_are_skipped() {
        let (s, d) = (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(239, 1, 1, 1));
        let f = ethernet_udp4(s, 1, d, 2, &[0; 100]);
        assert_eq!(udp(ETHERNET, &f[..60]), Err(Skip::Truncated));
        let mut frag = f.clone();
        frag[14 + 6] = 0x20; // more fragments
        assert_eq!(udp(ETHERNET, &frag), Err(Skip::Fragment));
        let mut tcp = f.clone();
        tcp[14 + 9] = 6;
        assert_eq!(udp(ETHERNET, &tcp), Err(Skip::NotUdp));
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(udp(ETHERNET, &arp), Err(Skip::NotUdp));
        assert_eq!(udp(147, &f), Err(Skip::LinkType));
    }

    #[test]
    fn ipv6_with_a_hop_by_hop_header() {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
        p.extend("fd77::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend("ff15::1".parse::<Ipv6Addr>().unwrap().octets());
        let mut rest = vec![17, 0, 5, 2, 0, 0, 1, 0]; // hop-by-hop, router alert, next UDP
        rest.extend([0x13, 0x88, 0x13, 0x89, 0, 10, 0, 0, b'h', b'i']);
        p[4..6].copy_from_slice(&(rest.len() as u16).to_be_bytes());
        p.extend(rest);
        let u = udp(RAW, &p).unwrap();
        assert_eq!((u.src_port, u.dst_port, u.payload), (5000, 5001, &b"hi"[..]));
        assert_eq!(u.dst, "ff15::1".parse::<IpAddr>().unwrap());
    }
}
