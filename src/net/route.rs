//! What the kernel's routing says, asked without sending anything: the route to an address, and
//! whether a packet from a source arriving on an interface would be accepted (the reverse-path
//! filter's check), through `ip -j route get` (iproute2), and the rp_filter settings from
//! /proc. Used by the responder to name why probes never reached its socket, and by
//! `mcprobe doctor`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::Command;

/// One route, as `ip -j route get` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The interface it leaves (or, for local input, arrives) by.
    pub dev: String,
    /// `unicast`, `local`, `multicast`, … (`unicast` when `ip` leaves it out).
    pub kind: String,
    pub prefsrc: Option<IpAddr>,
}

/// Runs `ip -j ARGS`: the JSON, or the error `ip` printed.
fn ip_json(args: &[&str]) -> Result<serde_json::Value, String> {
    let out =
        Command::new("ip").arg("-j").args(args).output().map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(err.trim_start_matches("RTNETLINK answers: ").to_string());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("`ip -j {}`: unexpected output: {e}", args.join(" ")))
}

fn route_of(v: &serde_json::Value) -> Option<Route> {
    let r = v.as_array()?.first()?;
    Some(Route {
        dev: r["dev"].as_str()?.to_string(),
        kind: r["type"].as_str().unwrap_or("unicast").to_string(),
        prefsrc: r["prefsrc"].as_str().and_then(|s| s.parse().ok()),
    })
}

/// The route this host would send to `dst` by.
pub fn route_get(dst: IpAddr) -> Result<Route, String> {
    let v = ip_json(&["route", "get", &dst.to_string()])?;
    route_of(&v).ok_or_else(|| format!("no route to {dst}"))
}

/// Whether a packet to `dst` from `src` arriving on `iif` would be routed (accepted, for a
/// local or multicast `dst`): `Err` with the kernel's reason when not. A source the
/// reverse-path filter refuses gives "Invalid argument" (a martian source).
pub fn input_route(dst: IpAddr, src: IpAddr, iif: &str) -> Result<Route, String> {
    let v = ip_json(&["route", "get", &dst.to_string(), "from", &src.to_string(), "iif", iif])?;
    route_of(&v).ok_or_else(|| format!("no route to {dst} from {src} on {iif}"))
}

/// The reverse-path filter in force on `iface` for IPv4: the larger of its own setting and
/// `all` (as the kernel takes it): 0 off, 1 strict, 2 loose. `None` when unreadable.
pub fn rp_filter(iface: &str) -> Option<u8> {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{name}/rp_filter")).ok()?.trim().parse::<u8>().ok()
    };
    Some(read("all")?.max(read(iface)?))
}

/// Why this host drops what `src` sends to it on `iif`, as far as routing can tell: the
/// reverse-path filter when the kernel refuses such a packet and the route back to `src`
/// leaves by another interface. `None` when routing accepts it (then a firewall, or something
/// else, drops it).
pub fn reverse_path_refuses(local: IpAddr, src: IpAddr, iif: &str) -> Option<RpRefusal> {
    let rp = rp_filter(iif);
    if !may_blame_rp_filter(rp, iif) {
        return None;
    }
    let err = input_route(local, src, iif).err()?;
    let back = route_get(src).ok().map(|r| r.dev);
    Some(RpRefusal { src, iif: iif.to_string(), back_via: back, rp_filter: rp, kernel_says: err })
}

/// Whether a refused input route may be put down to the reverse-path filter: not when the
/// filter is off (rp_filter 0: what the kernel refuses then is a martian source, or a
/// down interface), nor on loopback, where `ip route get … iif lo` fails for every source
/// although the packets are taken.
pub fn may_blame_rp_filter(rp_filter: Option<u8>, iif: &str) -> bool {
    rp_filter != Some(0) && iif != "lo"
}

/// The reverse-path filter refuses `src` on `iif`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpRefusal {
    pub src: IpAddr,
    pub iif: String,
    /// The interface the route back to `src` leaves by.
    pub back_via: Option<String>,
    pub rp_filter: Option<u8>,
    /// What `ip route get` said.
    pub kernel_says: String,
}

impl RpRefusal {
    /// In words, with the fix.
    pub fn describe(&self) -> String {
        let back = self.back_via.as_deref().map_or(String::new(), |d| format!(": the route back to it leaves by {d}"));
        let setting = self.rp_filter.map_or(String::new(), |v| format!(" (rp_filter {v})"));
        format!(
            "the reverse-path filter{setting} refuses packets from {} arriving on {}{back}; make that route leave by {}, or, when it does reach {}, loosen the check: sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{}.rp_filter=2",
            self.src, self.iif, self.iif, self.src, self.iif
        )
    }
}

pub use crate::run::Neighbour;

/// The neighbour table, both families: addresses this host asked the link about, and whether
/// they answered. Empty when `ip` cannot say.
pub fn neighbours() -> HashMap<IpAddr, Neighbour> {
    let mut out = HashMap::new();
    for family in ["-4", "-6"] {
        let Ok(v) = ip_json(&[family, "neigh", "show"]) else { continue };
        for n in v.as_array().into_iter().flatten() {
            let Some(addr) = n["dst"].as_str().and_then(|s| s.parse().ok()) else { continue };
            let states: Vec<&str> = n["state"].as_array().into_iter().flatten().filter_map(|s| s.as_str()).collect();
            let state = if states.iter().any(|s| matches!(*s, "INCOMPLETE" | "FAILED")) {
                Neighbour::Unanswered
            } else if states.iter().any(|s| matches!(*s, "REACHABLE" | "STALE" | "DELAY" | "PROBE" | "PERMANENT")) {
                Neighbour::Resolved
            } else {
                continue;
            };
            out.insert(addr, state);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reverse_path_filter_is_blamed_only_when_on_and_off_loopback() {
        assert!(may_blame_rp_filter(Some(1), "eth0"));
        assert!(may_blame_rp_filter(Some(2), "veth0"));
        // Unreadable: the kernel's refusal may still be the filter's.
        assert!(may_blame_rp_filter(None, "eth0"));
        assert!(!may_blame_rp_filter(Some(0), "eth0"));
        assert!(!may_blame_rp_filter(Some(1), "lo"));
    }
}
