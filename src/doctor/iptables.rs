//! iptables rulesets: what `iptables-save` (legacy backend) prints, as a [`Ruleset`] (pure).
//! The matches mcprobe's packets meet are read (`-p`, `-s`, `-d`, `-i`, `-o`, ports, `multiport`,
//! `conntrack`/`state`, `pkttype`); any other match is kept as unknown, never guessed.
//! (iptables-nft rules are in `nft -j list ruleset` already.)

use super::firewall::{Action, Chain, Family, Field, Hook, Match, Rule, Ruleset, Tool, Value, ICMPV6, IGMP, UDP};

/// The tables mcprobe's packets meet: their hooks and priorities (`nat` does not drop).
fn table_hooks(table: &str, chain: &str) -> Option<(Hook, i32)> {
    let prio = match table {
        "raw" => -300,
        "mangle" => -150,
        "filter" => 0,
        "security" => 50,
        _ => return None,
    };
    let hook = match chain {
        "PREROUTING" => Hook::Prerouting,
        "INPUT" => Hook::Input,
        "OUTPUT" => Hook::Output,
        "POSTROUTING" => Hook::Postrouting,
        "FORWARD" => Hook::Forward,
        _ => return None,
    };
    Some((hook, prio))
}

/// Splits a rule line into words, keeping quoted ones (comments) whole.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn proto(s: &str) -> Option<u64> {
    s.parse().ok().or(Some(match s {
        "udp" => u64::from(UDP),
        "tcp" => 6,
        "igmp" => u64::from(IGMP),
        "icmp" => 1,
        "ipv6-icmp" | "icmpv6" => u64::from(ICMPV6),
        _ => return None,
    }))
}

fn ports(s: &str) -> Option<Vec<Value>> {
    s.split(',')
        .map(|p| match p.split_once(':') {
            Some((a, b)) => Some(Value::Range(a.parse().ok()?, b.parse().ok()?)),
            None => Some(Value::Num(p.parse().ok()?)),
        })
        .collect()
}

/// One `-A CHAIN ...` line's matches and target; the chain's name. `declared`: the chains of
/// its table, which a `-j` may name.
fn rule_of(w: &[String], line: &str, declared: &[String]) -> (String, Rule) {
    let chain = w.get(1).cloned().unwrap_or_default();
    let mut matches = Vec::new();
    let mut action = Action::Continue;
    let mut udp = false;
    let mut negate = false;
    let mut i = 2;
    let push = |matches: &mut Vec<Match>, field: Field, negate: bool, values: Option<Vec<Value>>, raw: &str| {
        matches.push(match values {
            Some(values) => Match::Is { field, negate, values },
            None => Match::Unknown(raw.to_string()),
        });
    };
    while i < w.len() {
        let opt = w[i].as_str();
        let arg = w.get(i + 1).map(String::as_str).unwrap_or("");
        let mut took = 2;
        match opt {
            "!" => {
                negate = true;
                i += 1;
                continue;
            }
            "-p" | "--protocol" => {
                udp = arg == "udp";
                push(&mut matches, Field::L4Proto, negate, proto(arg).map(|n| vec![Value::Num(n)]), arg);
            }
            "-s" | "--source" | "-d" | "--destination" => {
                let field = if opt.starts_with("-s") || opt == "--source" { Field::SAddr } else { Field::DAddr };
                let nets = arg.split(',').map(|n| n.parse::<ipnet::IpNet>().ok().map(Value::Net)).collect();
                push(&mut matches, field, negate, nets, &format!("{opt} {arg}"));
            }
            "-i" | "--in-interface" => push(&mut matches, Field::Iif, negate, Some(vec![Value::Name(arg.into())]), arg),
            "-o" | "--out-interface" => {
                push(&mut matches, Field::Oif, negate, Some(vec![Value::Name(arg.into())]), arg)
            }
            "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                push(&mut matches, Field::DPort { udp_only: udp }, negate, ports(arg), &format!("{opt} {arg}"))
            }
            "--sport" | "--source-port" | "--sports" | "--source-ports" => {
                push(&mut matches, Field::SPort { udp_only: udp }, negate, ports(arg), &format!("{opt} {arg}"))
            }
            "--ctstate" | "--state" => {
                let states = arg.split(',').map(|s| Value::Name(s.to_ascii_lowercase())).collect();
                push(&mut matches, Field::CtState, negate, Some(states), arg);
            }
            "--pkt-type" => push(&mut matches, Field::PktType, negate, Some(vec![Value::Name(arg.into())]), arg),
            // Modules whose own options are read above, and comments.
            "-m" | "--match"
                if matches!(arg, "udp" | "tcp" | "multiport" | "conntrack" | "state" | "pkttype" | "comment") => {}
            "--comment" => {}
            "-j" | "--jump" => {
                action = match arg {
                    "ACCEPT" => Action::Accept,
                    "DROP" => Action::Drop,
                    "REJECT" => Action::Reject,
                    "RETURN" => Action::Return,
                    // Targets that log, mark or count and let the packet go on.
                    "LOG" | "NFLOG" | "MARK" | "CONNMARK" | "TRACE" | "CT" | "NOTRACK" => Action::Continue,
                    chain if declared.iter().any(|d| d == chain) => Action::Jump(chain.to_string()),
                    // Another target (NFQUEUE, TPROXY…): it may drop; not guessed.
                    t => {
                        matches.push(Match::Unknown(format!("-j {t}")));
                        Action::Drop
                    }
                };
            }
            "-g" | "--goto" => action = Action::Goto(arg.to_string()),
            // Anything else (a module with its options): not evaluated.
            _ => {
                let mut raw = vec![opt.to_string()];
                took = 1;
                while let Some(next) = w
                    .get(i + took)
                    .filter(|n| !matches!(n.as_str(), "-m" | "-j" | "-g" | "!" | "-p" | "-s" | "-d" | "-i" | "-o"))
                {
                    raw.push(next.clone());
                    took += 1;
                }
                matches.push(Match::Unknown(raw.join(" ")));
            }
        }
        negate = false;
        i += took;
    }
    (chain, Rule { matches, action, text: line.to_string() })
}

/// Reads `iptables-save` (or `ip6tables-save`, with `v6`).
pub fn parse(dump: &str, v6: bool) -> Ruleset {
    let family = if v6 { Family::Ip6 } else { Family::Ip };
    let mut chains: Vec<Chain> = Vec::new();
    let mut table = String::new();
    for line in dump.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
        } else if let Some(decl) = line.strip_prefix(':') {
            let mut parts = decl.split_whitespace();
            let name = parts.next().unwrap_or("").to_string();
            let policy = parts.next().unwrap_or("-");
            chains.push(Chain {
                tool: Tool::Iptables,
                family,
                table: table.clone(),
                hook: table_hooks(&table, &name),
                device: None,
                policy_drop: policy == "DROP",
                name,
                rules: Vec::new(),
            });
        } else if line.starts_with("-A ") {
            // iptables-save declares a table's chains before its rules.
            let declared: Vec<String> = chains.iter().filter(|c| c.table == table).map(|c| c.name.clone()).collect();
            let (chain, rule) = rule_of(&words(line), line, &declared);
            if let Some(c) = chains.iter_mut().find(|c| c.table == table && c.name == chain) {
                c.rules.push(rule);
            }
        }
    }
    Ruleset { chains }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::firewall::{Ct, Fate, Packet};

    const DUMP: &str = include_str!("testdata/iptables.txt");

    fn packet(dst: &str, dport: u16, ct: Ct, multicast: bool) -> Packet {
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
            multicast,
            inbound: true,
        }
    }

    #[test]
    fn a_real_dump_reads_and_judges_like_the_kernel() {
        let rs = parse(DUMP, false);
        let input = rs.chains.iter().find(|c| c.name == "INPUT").unwrap();
        assert_eq!((input.hook, input.policy_drop, input.rules.len()), (Some((Hook::Input, 0)), true, 6));
        assert_eq!(input.rules[5].action, Action::Jump("MYCHAIN".into()));
        // The group's port, and an ack port of the multiport range: accepted.
        assert_eq!(rs.fate(&packet("239.255.42.42", 24242, Ct::New, true)), Fate::Accepted);
        assert_eq!(rs.fate(&packet("10.77.0.1", 24244, Ct::New, false)), Fate::Accepted);
        // An ephemeral ack port: the policy drops it; as an answer to a unicast probe it passes.
        let Fate::Dropped { chain, rule: None, .. } = rs.fate(&packet("10.77.0.1", 41234, Ct::New, false)) else {
            panic!("dropped by the policy")
        };
        assert_eq!((chain.tool, chain.chain.as_str()), (Tool::Iptables, "INPUT"));
        assert_eq!(rs.fate(&packet("10.77.0.1", 41234, Ct::Established, false)), Fate::Accepted);
        // MYCHAIN logs (under a limit) and returns: then the policy.
        assert!(matches!(rs.fate(&packet("239.9.9.9", 5000, Ct::New, true)), Fate::Dropped { rule: None, .. }));
        assert!(words(r#"-A X -m comment --comment "two words" -j ACCEPT"#).contains(&"two words".to_string()));
    }
}
