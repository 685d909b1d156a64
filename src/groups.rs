//! Lists of multicast groups as people write them: one address, a range (`239.1.1.1-239.1.4.250`),
//! a prefix (`239.1.0.0/22`, `ff15::1:0/118`), several of them comma-separated; and the
//! `GROUP:PORT` form (`239.1.1.1:5000`, `[ff15::1]:5000`, `239.1.0.0/22:5000`). Pure: no I/O.
//!
//! Kept apart from any one command: `watch` uses it now, and other commands that take many
//! groups can use the same spelling. A list is capped (the caller says how many), so a typo such
//! as `/8` asks for a sane error instead of sixteen million sockets.

use std::net::IpAddr;

/// Groups of one family, in the order written, without repeats.
pub fn parse_groups(spec: &str, limit: usize) -> Result<Vec<IpAddr>, String> {
    let mut out: Vec<IpAddr> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        for g in expand(item, limit)? {
            if !out.contains(&g) {
                out.push(g);
            }
            if out.len() > limit {
                return Err(format!("'{spec}': more than {limit} groups"));
            }
        }
    }
    match out.first() {
        None => Err(format!("'{spec}': no group")),
        Some(first) if out.iter().any(|g| g.is_ipv6() != first.is_ipv6()) => {
            Err(format!("'{spec}': mixes IPv4 and IPv6 groups"))
        }
        Some(_) => Ok(out),
    }
}

/// `SPEC:PORT`, SPEC as [`parse_groups`] reads it; IPv6 in brackets (`[ff15::1-ff15::9]:5000`).
pub fn parse_groups_port(s: &str, limit: usize) -> Result<(Vec<IpAddr>, u16), String> {
    let s = s.trim();
    let (spec, port) = if let Some(rest) = s.strip_prefix('[') {
        let (spec, port) = rest.split_once("]:").ok_or_else(|| format!("'{s}': expected [IPv6 GROUP]:PORT"))?;
        (spec, port)
    } else {
        let (spec, port) = s.rsplit_once(':').ok_or_else(|| format!("'{s}': expected GROUP:PORT"))?;
        if spec.contains(':') {
            return Err(format!("'{s}': write IPv6 groups in brackets, as [ff15::1]:5000"));
        }
        (spec, port)
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("'{s}': '{port}' is not a port (1-65535)")),
    };
    Ok((parse_groups(spec, limit)?, port))
}

fn one(s: &str) -> Result<IpAddr, String> {
    let a: IpAddr = s.trim().parse().map_err(|_| format!("'{s}' is not an IP address"))?;
    if !a.is_multicast() {
        return Err(format!("'{a}' is not a multicast address (224.0.0.0/4 or ff00::/8)"));
    }
    Ok(a)
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(v.into())
    } else {
        IpAddr::V4((v as u32).into())
    }
}

fn expand(item: &str, limit: usize) -> Result<Vec<IpAddr>, String> {
    let (lo, hi) = if let Some((a, b)) = item.split_once('-') {
        let (a, b) = (one(a)?, one(b)?);
        if a.is_ipv6() != b.is_ipv6() {
            return Err(format!("'{item}': the range's ends are of different families"));
        }
        if to_u128(b) < to_u128(a) {
            return Err(format!("'{item}': the range ends before it starts"));
        }
        (a, b)
    } else if item.contains('/') {
        let net: ipnet::IpNet = item.parse().map_err(|_| format!("'{item}' is not a prefix (239.1.0.0/22)"))?;
        let (a, b) = (net.network(), net.broadcast());
        if !a.is_multicast() || !b.is_multicast() {
            return Err(format!("'{item}': not all multicast (224.0.0.0/4 or ff00::/8)"));
        }
        (a, b)
    } else {
        let a = one(item)?;
        (a, a)
    };
    let (l, h) = (to_u128(lo), to_u128(hi));
    if h - l >= limit as u128 {
        return Err(format!("'{item}': {} groups, more than the {limit} allowed", (h - l).saturating_add(1)));
    }
    Ok((l..=h).map(|v| from_u128(v, lo.is_ipv6())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_prefixes_and_lists() {
        assert_eq!(parse_groups("239.1.1.1", 10), Ok(vec![v("239.1.1.1")]));
        let r = parse_groups("239.1.1.254-239.1.2.1", 10).unwrap();
        assert_eq!(r, ["239.1.1.254", "239.1.1.255", "239.1.2.0", "239.1.2.1"].map(v));
        let p = parse_groups("239.1.0.0/22", 4096).unwrap();
        assert_eq!((p.len(), p[0], p[1023]), (1024, v("239.1.0.0"), v("239.1.3.255")));
        let p = parse_groups("ff15::1:0/118", 4096).unwrap();
        assert_eq!((p.len(), p[0], p[1023]), (1024, v("ff15::1:0"), v("ff15::1:3ff")));
        // A host address inside the prefix is taken as its prefix.
        assert_eq!(parse_groups("239.1.0.7/30", 10).unwrap().len(), 4);
        // Lists keep their order and drop repeats.
        let l = parse_groups("239.9.9.9, 239.1.1.1-239.1.1.2,239.1.1.2", 10).unwrap();
        assert_eq!(l, ["239.9.9.9", "239.1.1.1", "239.1.1.2"].map(v));
        let full = parse_groups("239.1.4.0-239.1.4.250", 4096).unwrap();
        assert_eq!(full.len(), 251);
    }

    #[test]
    fn mistakes_are_named() {
        let e = |s: &str| parse_groups(s, 1024).unwrap_err();
        assert!(e("10.0.0.1").contains("not a multicast"));
        assert!(e("239.1.1.9-239.1.1.1").contains("ends before it starts"));
        assert!(e("239.0.0.0/8").contains("16777216 groups, more than the 1024"));
        assert!(e("ff15::/16").contains("more than the 1024"));
        assert!(e("224.0.0.0/3").contains("not all multicast"));
        assert!(e("239.1.1.1-ff15::1").contains("different families"));
        assert!(e("239.1.1.1,ff15::1").contains("mixes IPv4 and IPv6"));
        assert!(e("nonsense").contains("not an IP address"));
        assert!(e(" , ").contains("no group"));
        assert!(parse_groups("239.1.0.0/24,239.1.1.0/24", 300).unwrap_err().contains("more than 300 groups"));
    }

    #[test]
    fn group_and_port() {
        assert_eq!(parse_groups_port("239.1.1.1:5000", 8), Ok((vec![v("239.1.1.1")], 5000)));
        assert_eq!(parse_groups_port("[ff15::1]:5000", 8), Ok((vec![v("ff15::1")], 5000)));
        let (g, p) = parse_groups_port("239.1.0.0/30:1234", 8).unwrap();
        assert_eq!((g.len(), p), (4, 1234));
        let (g, _) = parse_groups_port("[ff15::1-ff15::3]:9", 8).unwrap();
        assert_eq!(g.len(), 3);
        assert!(parse_groups_port("ff15::1:5000", 8).unwrap_err().contains("brackets"));
        assert!(parse_groups_port("239.1.1.1", 8).unwrap_err().contains("GROUP:PORT"));
        assert!(parse_groups_port("239.1.1.1:0", 8).unwrap_err().contains("not a port"));
        assert!(parse_groups_port("239.1.1.1:http", 8).unwrap_err().contains("not a port"));
    }
}
