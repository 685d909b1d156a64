//! A firewall ruleset, read statically, and what it does to the packets mcprobe sends and
//! receives. Pure: the rulesets come from [`super::nft`] and [`super::iptables`] (parsed from
//! what `nft -j list ruleset` and `iptables-legacy-save` print), the packets from
//! [`super::checks`].
//!
//! A packet runs through the base chains of its hooks in the kernel's order (prerouting then
//! input for what arrives, output then postrouting for what leaves; by priority within a
//! hook, across tables and tools): a drop anywhere is final, an accept ends only its own base
//! chain. Within a chain the rules are evaluated in order, with jumps, gotos and returns. A
//! match this reader cannot evaluate (a rate limit, a mark, a fib lookup, an `xt` match) is
//! not guessed: both of its outcomes are followed, and when they disagree the answer is
//! "cannot tell", with the rule that made it so.

use std::net::IpAddr;

use ipnet::IpNet;

/// Where in the kernel's path a chain is hooked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    /// nftables `netdev` ingress, on one device (before everything else).
    Ingress,
    Prerouting,
    Input,
    Output,
    Postrouting,
    Forward,
}

/// Which packets a table sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ip,
    Ip6,
    /// Both.
    Inet,
    /// `netdev`: everything on its device.
    Netdev,
    /// Bridge, ARP: not IP traffic to this host.
    Other,
}

impl Family {
    fn sees(self, v6: bool) -> bool {
        match self {
            Family::Ip => !v6,
            Family::Ip6 => v6,
            Family::Inet | Family::Netdev => true,
            Family::Other => false,
        }
    }
}

/// What a rule does when it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Accept,
    Drop,
    /// Drop, with an ICMP error back.
    Reject,
    Jump(String),
    Goto(String),
    Return,
    /// No verdict (counter, log): evaluation goes on.
    Continue,
}

/// A packet field a rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The transport protocol number (`meta l4proto`, `ip protocol`, `ip6 nexthdr`, `-p`).
    L4Proto,
    /// `udp dport` / `th dport`: a destination port, of UDP only, or of any transport with ports.
    DPort {
        udp_only: bool,
    },
    SPort {
        udp_only: bool,
    },
    SAddr,
    DAddr,
    /// The input interface's name (`iif`, `iifname`, `-i`; `+`/`*` ends a wildcard).
    Iif,
    Oif,
    /// Connection-tracking state names.
    CtState,
    /// `host`, `multicast`, `broadcast`.
    PktType,
    /// The message type of ICMPv6 or IGMP (by number).
    IcmpType,
}

/// A value a field is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Num(u64),
    Range(u64, u64),
    Net(IpNet),
    Name(String),
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// The field equals one of the values (`negate`: none of them). A field the packet does not
    /// have (a port of an IGMP packet) makes the match false either way, as in the kernel.
    Is { field: Field, negate: bool, values: Vec<Value> },
    /// Something this reader does not evaluate, as written.
    Unknown(String),
    /// A known field compared with values this reader cannot read: false for a packet
    /// without the field (an ICMPv6 type of a UDP packet), else unknown.
    Unreadable { field: Field, text: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub action: Action,
    /// The rule as its tool prints it, for messages.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Which tool the fix is written for.
    pub tool: Tool,
    pub family: Family,
    pub table: String,
    pub name: String,
    /// For a base chain: its hook and priority (and, for `netdev`, its device).
    pub hook: Option<(Hook, i32)>,
    pub device: Option<String>,
    /// What happens at the end of a base chain.
    pub policy_drop: bool,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Nftables,
    /// iptables, either backend (`iptables-save` prints the same for both).
    Iptables,
}

/// Every chain of every table this host has, from both tools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: Vec<Chain>,
}

/// Connection-tracking state of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct {
    New,
    Established,
}

/// A packet to run through the ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub l4: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// The ICMPv6 or IGMP type.
    pub icmp_type: Option<u8>,
    /// Arriving: the interface it comes in by; leaving: `oif`.
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub ct: Ct,
    pub multicast: bool,
    /// `true`: it arrives (ingress, prerouting, input); `false`: it leaves (output, postrouting).
    pub inbound: bool,
}

pub const UDP: u8 = 17;
pub const IGMP: u8 = 2;
pub const ICMPV6: u8 = 58;

/// What the ruleset does to a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Accepted,
    /// Dropped (or rejected) by this rule, or by its chain's policy (`rule: None`).
    Dropped {
        chain: ChainRef,
        rule: Option<String>,
        reject: bool,
    },
    /// It depends on something not modelled; the rule that makes it so.
    CannotTell {
        chain: ChainRef,
        rule: String,
    },
}

/// A chain, by name, for messages and fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRef {
    pub tool: Tool,
    pub family: Family,
    pub table: String,
    pub chain: String,
    /// The base chain the packet entered by (where an accept rule goes in a fix).
    pub base: String,
}

impl ChainRef {
    /// How its tool names it: `inet filter input`, or iptables' `INPUT chain`.
    pub fn describe(&self) -> String {
        match self.tool {
            Tool::Nftables => self.nft_name(),
            Tool::Iptables => {
                let tool = if self.family == Family::Ip6 { "ip6tables" } else { "iptables" };
                let table = if self.table == "filter" { String::new() } else { format!(" (table {})", self.table) };
                format!("{tool}' {} chain{table}", self.chain)
            }
        }
    }

    /// `inet filter input`.
    pub fn nft_name(&self) -> String {
        let family = match self.family {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
            Family::Netdev => "netdev",
            Family::Other => "bridge",
        };
        format!("{family} {} {}", self.table, self.chain)
    }
}

/// Ternary truth: a match the reader cannot evaluate is `None`.
type Tri = Option<bool>;

fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix(['+', '*']) {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn value_matches(field: Field, v: &Value, p: &Packet) -> Tri {
    let num = |n: Option<u64>, v: &Value| -> Tri {
        let n = n?;
        match v {
            Value::Num(x) => Some(n == *x),
            Value::Range(a, b) => Some((*a..=*b).contains(&n)),
            _ => None,
        }
    };
    match field {
        Field::L4Proto => num(Some(u64::from(p.l4)), v),
        Field::DPort { .. } => num(p.dport.map(u64::from), v),
        Field::SPort { .. } => num(p.sport.map(u64::from), v),
        Field::IcmpType => num(p.icmp_type.map(u64::from), v),
        Field::SAddr | Field::DAddr => {
            let a = if field == Field::SAddr { p.src } else { p.dst };
            match v {
                Value::Net(n) => Some(n.contains(&a)),
                _ => None,
            }
        }
        Field::Iif | Field::Oif => {
            let dev = if field == Field::Iif { &p.iif } else { &p.oif };
            match (v, dev) {
                (Value::Name(pat), Some(d)) => Some(name_matches(pat, d)),
                // An interface of the other direction is not set (`iif` of a leaving packet).
                (Value::Name(_), None) => Some(false),
                _ => None,
            }
        }
        Field::CtState => match v {
            Value::Name(s) => Some(match p.ct {
                Ct::New => s == "new",
                Ct::Established => s == "established",
            }),
            _ => None,
        },
        Field::PktType => match v {
            Value::Name(s) => Some(if p.multicast { s == "multicast" } else { s == "host" }),
            _ => None,
        },
    }
}

/// Whether the packet has the field at all (a UDP port on an IGMP packet does not).
fn has_field(field: Field, p: &Packet) -> bool {
    match field {
        Field::DPort { udp_only } | Field::SPort { udp_only } => {
            if udp_only {
                p.l4 == UDP
            } else {
                p.sport.is_some()
            }
        }
        Field::IcmpType => p.icmp_type.is_some(),
        _ => true,
    }
}

fn match_of(m: &Match, p: &Packet) -> Tri {
    match m {
        Match::Unknown(_) => None,
        Match::Unreadable { field, .. } => (!has_field(*field, p)).then_some(false),
        Match::Is { field, negate, values } => {
            if !has_field(*field, p) {
                return Some(false);
            }
            let mut any: Tri = Some(false);
            for v in values {
                match value_matches(*field, v, p) {
                    Some(true) => {
                        any = Some(true);
                        break;
                    }
                    None => any = None,
                    Some(false) => {}
                }
            }
            any.map(|b| b != *negate)
        }
    }
}

/// How a chain ends for one way through it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Accept,
    Drop {
        chain: String,
        rule: Option<String>,
        reject: bool,
    },
    /// Fell off the end, or `return`.
    Return,
}

/// Every way a packet can leave chain `name` from rule `from` on (more than one when an
/// unknown match forks it), with the first unknown rule met.
fn run_chain(
    rs: &[&Chain],
    name: &str,
    from: usize,
    p: &Packet,
    depth: u32,
    unknown: &mut Option<(String, String)>,
) -> Vec<End> {
    let Some(chain) = rs.iter().find(|c| c.name == name) else {
        *unknown = unknown.take().or(Some((name.to_string(), format!("a jump to a chain not found: {name}"))));
        return vec![End::Return];
    };
    if depth > 16 {
        return vec![End::Return];
    }
    for (i, rule) in chain.rules.iter().enumerate().skip(from) {
        if rule.action == Action::Continue {
            continue;
        }
        let mut truth: Tri = Some(true);
        for m in &rule.matches {
            match match_of(m, p) {
                Some(false) => {
                    truth = Some(false);
                    break;
                }
                None => truth = None,
                Some(true) => {}
            }
        }
        let taken = |unknown: &mut Option<(String, String)>| -> Vec<End> {
            match &rule.action {
                Action::Accept => vec![End::Accept],
                Action::Drop | Action::Reject => vec![End::Drop {
                    chain: chain.name.clone(),
                    rule: Some(rule.text.clone()),
                    reject: rule.action == Action::Reject,
                }],
                Action::Return => vec![End::Return],
                Action::Continue => unreachable!("skipped above"),
                Action::Jump(target) => {
                    let mut ends = Vec::new();
                    for e in run_chain(rs, target, 0, p, depth + 1, unknown) {
                        match e {
                            End::Return => ends.extend(run_chain(rs, name, i + 1, p, depth, unknown)),
                            other => ends.push(other),
                        }
                    }
                    ends
                }
                Action::Goto(target) => run_chain(rs, target, 0, p, depth + 1, unknown),
            }
        };
        match truth {
            Some(false) => continue,
            Some(true) => return taken(unknown),
            None => {
                if unknown.is_none() {
                    *unknown = Some((chain.name.clone(), rule.text.clone()));
                }
                let mut ends = taken(unknown);
                ends.extend(run_chain(rs, name, i + 1, p, depth, unknown));
                return ends;
            }
        }
    }
    vec![End::Return]
}

impl Ruleset {
    /// The base chains a packet meets, in the kernel's order.
    fn path(&self, p: &Packet) -> Vec<&Chain> {
        let hooks: &[Hook] = if p.inbound {
            &[Hook::Ingress, Hook::Prerouting, Hook::Input]
        } else {
            &[Hook::Output, Hook::Postrouting]
        };
        let mut chains: Vec<&Chain> = (self.chains.iter())
            .filter(|c| c.family.sees(p.dst.is_ipv6()))
            .filter(|c| c.hook.is_some_and(|(h, _)| hooks.contains(&h)))
            .filter(|c| c.device.is_none() || c.device == p.iif || c.device == p.oif)
            .collect();
        chains.sort_by_key(|c| c.hook.map(|(h, prio)| (hooks.iter().position(|x| *x == h), prio)));
        chains
    }

    /// What the ruleset does to `p`.
    pub fn fate(&self, p: &Packet) -> Fate {
        let mut unsure: Option<ChainRef> = None;
        let mut unsure_rule = String::new();
        for base in self.path(p) {
            // Jumps stay within the base chain's table (and tool).
            let table: Vec<&Chain> = (self.chains.iter())
                .filter(|c| c.tool == base.tool && c.table == base.table && c.family == base.family)
                .collect();
            let mut unknown = None;
            let ends = run_chain(&table, &base.name, 0, p, 0, &mut unknown);
            let at = |chain: &str| ChainRef {
                tool: base.tool,
                family: base.family,
                table: base.table.clone(),
                chain: chain.to_string(),
                base: base.name.clone(),
            };
            let ends: Vec<End> = ends
                .into_iter()
                .map(|e| match e {
                    End::Return if base.policy_drop => {
                        End::Drop { chain: base.name.clone(), rule: None, reject: false }
                    }
                    End::Return => End::Accept,
                    other => other,
                })
                .collect();
            let drops = ends.iter().filter(|e| matches!(e, End::Drop { .. })).count();
            if drops == ends.len() {
                // The way where every match it could not evaluate was false: the plain reading.
                let Some(End::Drop { chain, rule, reject }) = ends.into_iter().last() else {
                    unreachable!("non-empty")
                };
                return Fate::Dropped { chain: at(&chain), rule, reject };
            }
            if drops > 0 && unsure.is_none() {
                let (chain, rule) = unknown.unwrap_or_default();
                unsure = Some(at(&chain));
                unsure_rule = rule;
            }
        }
        match unsure {
            Some(chain) => Fate::CannotTell { chain, rule: unsure_rule },
            None => Fate::Accepted,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rule(matches: Vec<Match>, action: Action, text: &str) -> Rule {
        Rule { matches, action, text: text.into() }
    }

    fn is(field: Field, values: Vec<Value>) -> Match {
        Match::Is { field, negate: false, values }
    }

    fn chain(name: &str, hook: Option<Hook>, policy_drop: bool, rules: Vec<Rule>) -> Chain {
        Chain {
            tool: Tool::Nftables,
            family: Family::Inet,
            table: "filter".into(),
            name: name.into(),
            hook: hook.map(|h| (h, 0)),
            device: None,
            policy_drop,
            rules,
        }
    }

    /// The stateful firewall of issue 19's first fault.
    pub(crate) fn stateful() -> Ruleset {
        let ct = is(Field::CtState, vec![Value::Name("established".into()), Value::Name("related".into())]);
        let lo = is(Field::Iif, vec![Value::Name("lo".into())]);
        let port = is(Field::DPort { udp_only: true }, vec![Value::Num(24242)]);
        Ruleset {
            chains: vec![chain(
                "input",
                Some(Hook::Input),
                true,
                vec![
                    rule(vec![ct], Action::Accept, "ct state established,related accept"),
                    rule(vec![lo], Action::Accept, "iif \"lo\" accept"),
                    rule(vec![port], Action::Accept, "udp dport 24242 accept"),
                ],
            )],
        }
    }

    fn udp(dst: &str, dport: u16, ct: Ct, multicast: bool) -> Packet {
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
    fn a_stateful_firewall_drops_the_multicast_acks_and_passes_the_rest() {
        let rs = stateful();
        // A probe to the group's port: accepted. An ack to an ephemeral port, new to conntrack:
        // dropped by the policy. The same as an answer to a unicast probe: accepted.
        assert_eq!(rs.fate(&udp("239.255.42.42", 24242, Ct::New, true)), Fate::Accepted);
        let Fate::Dropped { chain, rule: None, reject: false } = rs.fate(&udp("10.77.0.1", 41234, Ct::New, false))
        else {
            panic!("dropped by the policy")
        };
        assert_eq!(chain.nft_name(), "inet filter input");
        assert_eq!(rs.fate(&udp("10.77.0.1", 41234, Ct::Established, false)), Fate::Accepted);
        // IGMP has no port: only the policy applies to it.
        let igmp =
            Packet { l4: IGMP, sport: None, dport: None, icmp_type: Some(0x11), ..udp("224.0.0.1", 0, Ct::New, true) };
        assert!(matches!(rs.fate(&igmp), Fate::Dropped { rule: None, .. }));
        // Leaving: no output chain, accepted.
        assert_eq!(rs.fate(&Packet { inbound: false, ..udp("239.255.42.42", 24242, Ct::New, true) }), Fate::Accepted);
    }

    #[test]
    fn jumps_returns_negations_and_unknown_matches() {
        let mc = is(Field::DAddr, vec![Value::Net("239.0.0.0/8".parse().unwrap())]);
        let not_port =
            Match::Is { field: Field::DPort { udp_only: true }, negate: true, values: vec![Value::Num(24242)] };
        let rs = Ruleset {
            chains: vec![
                chain(
                    "input",
                    Some(Hook::Input),
                    false,
                    vec![
                        rule(vec![mc], Action::Jump("mc".into()), "ip daddr 239.0.0.0/8 jump mc"),
                        rule(
                            vec![Match::Unknown("limit rate 5/second".into())],
                            Action::Drop,
                            "limit rate 5/second drop",
                        ),
                    ],
                ),
                chain("mc", None, false, vec![rule(vec![not_port], Action::Drop, "udp dport != 24242 drop")]),
            ],
        };
        // To the group on its port: back from `mc`, then the rate limit may or may not drop it.
        let Fate::CannotTell { rule, .. } = rs.fate(&udp("239.1.2.3", 24242, Ct::New, true)) else { panic!("unsure") };
        assert_eq!(rule, "limit rate 5/second drop");
        // Another port: dropped in `mc`, whatever the limit does later.
        let Fate::Dropped { chain, rule: Some(r), .. } = rs.fate(&udp("239.1.2.3", 5000, Ct::New, true)) else {
            panic!("dropped")
        };
        assert_eq!((chain.chain.as_str(), chain.base.as_str(), r.as_str()), ("mc", "input", "udp dport != 24242 drop"));
    }

    #[test]
    fn chains_of_several_tables_and_hooks_run_in_order() {
        let mut early = chain("pre", Some(Hook::Prerouting), false, vec![]);
        early.hook = Some((Hook::Prerouting, -300));
        early.rules = vec![rule(
            vec![is(Field::PktType, vec![Value::Name("multicast".into())])],
            Action::Drop,
            "pkttype multicast drop",
        )];
        let mut other = stateful();
        other.chains[0].table = "other".into();
        other.chains.push(early);
        let Fate::Dropped { chain, .. } = other.fate(&udp("239.255.42.42", 24242, Ct::New, true)) else {
            panic!("dropped")
        };
        assert_eq!(chain.chain, "pre");
        // Wildcard interface names.
        assert!(name_matches("veth+", "veth0") && name_matches("eth*", "eth1") && !name_matches("eth0", "eth01"));
    }
}
