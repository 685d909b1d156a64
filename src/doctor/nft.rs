//! nftables rulesets: what `nft -j list ruleset` prints, as a [`Ruleset`] (pure). Each rule's
//! text comes from `nft -a list ruleset` (by its handle), for the messages.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::firewall::{Action, Chain, Family, Field, Hook, Match, Rule, Ruleset, Tool, Value, ICMPV6, IGMP, UDP};

/// The rules' texts by (family, table, chain, handle), from `nft -a list ruleset`.
pub fn rule_texts(listing: &str) -> HashMap<(String, String, String, u64), String> {
    let mut out = HashMap::new();
    let (mut family, mut table, mut chain) = (String::new(), String::new(), String::new());
    for line in listing.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["table", f, t, ..] => (family, table) = (f.to_string(), t.to_string()),
            ["chain", c, ..] => chain = c.to_string(),
            _ => {
                if let Some((rule, handle)) = line.rsplit_once(" # handle ") {
                    if let Ok(h) = handle.trim().parse() {
                        out.insert((family.clone(), table.clone(), chain.clone(), h), without_counters(rule.trim()));
                    }
                }
            }
        }
    }
    out
}

/// A rule's text without its counter's running figures (`counter packets 3 bytes 180`).
fn without_counters(rule: &str) -> String {
    let words: Vec<&str> = rule.split(' ').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "counter" && words.get(1 + i) == Some(&"packets") && words.get(3 + i) == Some(&"bytes") {
            i += 5;
            continue;
        }
        out.push(words[i]);
        i += 1;
    }
    out.join(" ")
}

fn family_of(s: &str) -> Family {
    match s {
        "ip" => Family::Ip,
        "ip6" => Family::Ip6,
        "inet" => Family::Inet,
        "netdev" => Family::Netdev,
        _ => Family::Other,
    }
}

fn hook_of(s: &str) -> Option<Hook> {
    Some(match s {
        "ingress" => Hook::Ingress,
        "prerouting" => Hook::Prerouting,
        "input" => Hook::Input,
        "output" => Hook::Output,
        "postrouting" => Hook::Postrouting,
        "forward" => Hook::Forward,
        _ => return None,
    })
}

/// nft's named priorities (for the `ip`/`inet` families).
fn priority_of(p: &Json) -> i32 {
    match p {
        Json::Number(n) => n.as_i64().unwrap_or(0) as i32,
        Json::String(s) => match s.as_str() {
            "raw" => -300,
            "mangle" => -150,
            "dstnat" => -100,
            "filter" => 0,
            "security" => 50,
            "srcnat" => 100,
            _ => 0,
        },
        _ => 0,
    }
}

/// A protocol or ICMP type by name or number.
fn proto_number(v: &Json) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    Some(match v.as_str()? {
        "udp" => u64::from(UDP),
        "tcp" => 6,
        "igmp" => u64::from(IGMP),
        "icmp" => 1,
        "ipv6-icmp" | "icmpv6" => u64::from(ICMPV6),
        "sctp" => 132,
        "udplite" => 136,
        "dccp" => 33,
        _ => return None,
    })
}

fn icmp_type_number(v: &Json) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    Some(match v.as_str()? {
        "destination-unreachable" => 1,
        "packet-too-big" => 2,
        "time-exceeded" => 3,
        "parameter-problem" => 4,
        "echo-request" => 128,
        "echo-reply" => 129,
        "nd-router-solicit" => 133,
        "nd-router-advert" => 134,
        "nd-neighbor-solicit" => 135,
        "nd-neighbor-advert" => 136,
        "nd-redirect" => 137,
        "mld-listener-query" => 130,
        "mld-listener-report" => 131,
        "mld-listener-done" | "mld-listener-reduction" => 132,
        "mld2-listener-report" => 143,
        "membership-query" => 0x11,
        "membership-report-v1" => 0x12,
        "membership-report-v2" => 0x16,
        "membership-report-v3" => 0x22,
        "leave-group" => 0x17,
        _ => return None,
    })
}

/// Reads one value of a match's right side.
type ReadValue = dyn Fn(&Json) -> Option<Value>;

/// The values of a match's right side, each read with `one`; `None` when one is unreadable.
fn values(right: &Json, sets: &HashMap<String, Vec<Json>>, one: &ReadValue) -> Option<Vec<Value>> {
    let items: Vec<Json> = match right {
        Json::Object(o) if o.contains_key("set") => o["set"].as_array()?.clone(),
        Json::String(s) if s.starts_with('@') => sets.get(&s[1..])?.clone(),
        Json::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    items.iter().map(one).collect()
}

fn num_value(v: &Json, name: &dyn Fn(&Json) -> Option<u64>) -> Option<Value> {
    if let Some(r) = v.get("range").and_then(Json::as_array) {
        return Some(Value::Range(name(r.first()?)?, name(r.get(1)?)?));
    }
    // A set element with a timeout or a comment: its value.
    if let Some(e) = v.get("elem") {
        return num_value(&e["val"], name);
    }
    name(v).map(Value::Num)
}

fn net_value(v: &Json) -> Option<Value> {
    if let Some(p) = v.get("prefix") {
        let addr: std::net::IpAddr = p["addr"].as_str()?.parse().ok()?;
        return ipnet::IpNet::new(addr, p["len"].as_u64()? as u8).ok().map(Value::Net);
    }
    if let Some(e) = v.get("elem") {
        return net_value(&e["val"]);
    }
    let addr: std::net::IpAddr = v.as_str()?.parse().ok()?;
    Some(Value::Net(addr.into()))
}

fn name_value(v: &Json) -> Option<Value> {
    v.as_str().map(|s| Value::Name(s.to_string()))
}

/// One `match` expression, as a [`Match`].
fn match_of(m: &Json, sets: &HashMap<String, Vec<Json>>) -> Match {
    let unknown = || Match::Unknown(m.to_string());
    let negate = match m["op"].as_str() {
        Some("==") | Some("in") => false,
        Some("!=") => true,
        _ => return unknown(),
    };
    let left = &m["left"];
    let right = &m["right"];
    let (field, one): (Field, &ReadValue) = if let Some(p) = left.get("payload") {
        match (p["protocol"].as_str(), p["field"].as_str()) {
            (Some("udp"), Some("dport")) => (Field::DPort { udp_only: true }, &|v| num_value(v, &Json::as_u64)),
            (Some("udp"), Some("sport")) => (Field::SPort { udp_only: true }, &|v| num_value(v, &Json::as_u64)),
            (Some("th"), Some("dport")) => (Field::DPort { udp_only: false }, &|v| num_value(v, &Json::as_u64)),
            (Some("th"), Some("sport")) => (Field::SPort { udp_only: false }, &|v| num_value(v, &Json::as_u64)),
            (Some("ip" | "ip6"), Some("saddr")) => (Field::SAddr, &net_value),
            (Some("ip" | "ip6"), Some("daddr")) => (Field::DAddr, &net_value),
            (Some("ip"), Some("protocol")) | (Some("ip6"), Some("nexthdr")) => {
                (Field::L4Proto, &|v| num_value(v, &proto_number))
            }
            (Some("icmpv6" | "igmp"), Some("type")) => (Field::IcmpType, &|v| num_value(v, &icmp_type_number)),
            _ => return unknown(),
        }
    } else if let Some(k) = left.get("meta").and_then(|x| x["key"].as_str()) {
        match k {
            "l4proto" => (Field::L4Proto, &|v| num_value(v, &proto_number)),
            "iif" | "iifname" => (Field::Iif, &name_value),
            "oif" | "oifname" => (Field::Oif, &name_value),
            "pkttype" => (Field::PktType, &name_value),
            _ => return unknown(),
        }
    } else if left.get("ct").and_then(|x| x["key"].as_str()) == Some("state") {
        (Field::CtState, &name_value)
    } else {
        return unknown();
    };
    match values(right, sets, one) {
        Some(values) => Match::Is { field, negate, values },
        None => Match::Unreadable { field, text: m.to_string() },
    }
}

/// A rule's `expr` list: its matches and its verdict.
fn rule_of(expr: &[Json], sets: &HashMap<String, Vec<Json>>, text: String) -> Rule {
    let mut matches = Vec::new();
    let mut action = Action::Continue;
    for e in expr {
        let Some((key, v)) = e.as_object().and_then(|o| o.iter().next()) else { continue };
        match key.as_str() {
            "match" => matches.push(match_of(v, sets)),
            "accept" => action = Action::Accept,
            "drop" => action = Action::Drop,
            "reject" => action = Action::Reject,
            "return" => action = Action::Return,
            "jump" => action = Action::Jump(v["target"].as_str().unwrap_or("").to_string()),
            "goto" => action = Action::Goto(v["target"].as_str().unwrap_or("").to_string()),
            // Statements that change nothing about the verdict.
            "counter" | "log" | "comment" | "mangle" | "notrack" => {}
            // A limit or quota is a condition this reader cannot evaluate.
            _ => matches.push(Match::Unknown(e.to_string())),
        }
    }
    Rule { matches, action, text }
}

/// Reads `nft -j list ruleset`; `texts` from [`rule_texts`].
pub fn parse(json: &str, texts: &HashMap<(String, String, String, u64), String>) -> Result<Ruleset, String> {
    let doc: Json = serde_json::from_str(json).map_err(|e| format!("nft -j: not JSON: {e}"))?;
    let items = doc["nftables"].as_array().ok_or("nft -j: no \"nftables\" list")?;
    let mut sets: HashMap<(String, String, String), Vec<Json>> = HashMap::new();
    for s in items.iter().filter_map(|i| i.get("set")) {
        let key = (
            s["family"].as_str().unwrap_or("").to_string(),
            s["table"].as_str().unwrap_or("").to_string(),
            s["name"].as_str().unwrap_or("").to_string(),
        );
        sets.insert(key, s["elem"].as_array().cloned().unwrap_or_default());
    }
    let mut chains: Vec<Chain> = Vec::new();
    for c in items.iter().filter_map(|i| i.get("chain")) {
        let hook = c["hook"].as_str().and_then(hook_of).map(|h| (h, priority_of(&c["prio"])));
        chains.push(Chain {
            tool: Tool::Nftables,
            family: family_of(c["family"].as_str().unwrap_or("")),
            table: c["table"].as_str().unwrap_or("").to_string(),
            name: c["name"].as_str().unwrap_or("").to_string(),
            hook,
            device: c["dev"].as_str().map(str::to_string),
            policy_drop: hook.is_some() && c["policy"].as_str() == Some("drop"),
            rules: Vec::new(),
        });
    }
    for r in items.iter().filter_map(|i| i.get("rule")) {
        let (family, table, chain) =
            (r["family"].as_str().unwrap_or(""), r["table"].as_str().unwrap_or(""), r["chain"].as_str().unwrap_or(""));
        let table_sets: HashMap<String, Vec<Json>> = (sets.iter())
            .filter(|((f, t, _), _)| f == family && t == table)
            .map(|((_, _, n), e)| (n.clone(), e.clone()))
            .collect();
        let handle = r["handle"].as_u64().unwrap_or(0);
        let key = (family.to_string(), table.to_string(), chain.to_string(), handle);
        let text = texts.get(&key).cloned().unwrap_or_else(|| format!("rule {handle} of {family} {table} {chain}"));
        let rule = rule_of(r["expr"].as_array().map_or(&[][..], Vec::as_slice), &table_sets, text);
        if let Some(c) =
            chains.iter_mut().find(|c| c.name == chain && c.table == table && family_of(family) == c.family)
        {
            c.rules.push(rule);
        }
    }
    Ok(Ruleset { chains })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::firewall::{Ct, Fate, Packet};

    /// Printed by nft 1.0.6 (`nft -j list ruleset`, `nft -a list ruleset`) for the lab's test
    /// ruleset.
    const JSON: &str = include_str!("testdata/nft.json");
    const TEXT: &str = include_str!("testdata/nft.txt");

    fn packet(dst: &str, dport: u16, ct: Ct) -> Packet {
        Packet {
            l4: UDP,
            src: "10.77.0.2".parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport: Some(24242),
            dport: Some(dport),
            icmp_type: None,
            iif: Some("veth0".into()),
            oif: None,
            ct,
            multicast: dst.starts_with("239"),
            inbound: true,
        }
    }

    #[test]
    fn a_real_ruleset_reads_into_chains_with_their_rules() {
        let rs = parse(JSON, &rule_texts(TEXT)).unwrap();
        let names: Vec<&str> = rs.chains.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["input", "mc"]);
        let input = &rs.chains[0];
        assert_eq!((input.hook, input.policy_drop, input.family), (Some((Hook::Input, 0)), true, Family::Inet));
        assert_eq!(input.rules[0].text, "ct state established,related accept");
        // The named set's elements, a range, a prefix.
        assert!(
            matches!(&input.rules[4].matches[0], Match::Is { field: Field::SAddr, values, .. } if values.len() == 2)
        );
        assert_eq!(rs.fate(&packet("239.255.42.42", 24242, Ct::New)), Fate::Accepted);
        assert_eq!(rs.fate(&packet("10.77.0.1", 30005, Ct::New)), Fate::Accepted);
        // To the group on another port: `mc` drops it.
        let fate = rs.fate(&packet("239.1.1.1", 5000, Ct::New));
        let Fate::Dropped { chain, rule: Some(rule), .. } = fate else {
            panic!("dropped in mc: {fate:?} {:#?}", rs.chains)
        };
        assert_eq!((chain.chain.as_str(), rule.as_str()), ("mc", "udp dport != 24242 drop"));
        // An ack to an ephemeral port: the fib rule might drop it first, then the policy would:
        // dropped either way.
        let Fate::Dropped { rule: None, .. } = rs.fate(&packet("10.77.0.1", 41234, Ct::New)) else {
            panic!("dropped by the policy")
        };
    }
}
