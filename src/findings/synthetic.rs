//! Synthetic runs for tests: real accounting ([`crate::stats::Run`]) fed with made-up acks, so the
//! findings and the outputs can be tested exactly, without sockets or clocks.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::run::{Outcome, UnicastRun};
use crate::stats::{Run, RunConfig};
use crate::wire::{Ack, Arrival};

const MS: u64 = 1_000_000;
/// 2026-11-27 00:00:00 UTC: runs start at a fixed time, so outputs are byte-for-byte stable.
pub(crate) const T0: u64 = 1_795_737_600 * 1_000_000_000;
pub(crate) const SESSION: u64 = 0x5e55_1000_0000_0001;

/// One responder's behaviour: which probes it answers, with what RTT.
#[derive(Clone)]
pub(crate) struct Answerer {
    pub id: u64,
    pub name: &'static str,
    pub from: SocketAddr,
    /// Routers between the prober and it: its acks arrive with the TTL the probes left with
    /// (1 for multicast, 64 for unicast) less this.
    pub hops: u8,
    pub rtt_us: u64,
    /// Probes it never received (forward loss).
    pub drop_probe: fn(u64) -> bool,
    /// Of those, the ones its own host dropped (a full socket buffer), which it counts.
    pub host_dropped: fn(u64) -> bool,
    /// Its acks carry the extension (host drops, join); with `Some(ms)` it joined the group that
    /// long after the run's first probe, and the first probe after that reached it.
    pub reports: Option<Option<u64>>,
    /// With `reports`: the probes whose acks carry the extension (a prober pads only some).
    pub reports_at: fn(u64) -> bool,
    /// Probes it received but did not answer (its --rate-limit); its later acks count them.
    pub limit_probe: fn(u64) -> bool,
    /// Probes it answered whose ack was lost on the way back.
    pub lose_ack: fn(u64) -> bool,
    /// With `reports`: its host's tap count of this prober's probes dropped before its socket,
    /// which grows by this much per probe (the ack extension's `filtered`).
    pub filtered_per_probe: Option<u32>,
    /// With `reports`: the group its acks to unicast probes say it serves.
    pub serves: Option<IpAddr>,
}

impl Answerer {
    pub(crate) fn new(id: u64, name: &'static str, from: &str) -> Self {
        Answerer {
            id,
            name,
            from: from.parse().expect("a socket address"),
            hops: 0,
            rtt_us: 250,
            drop_probe: |_| false,
            host_dropped: |_| false,
            reports: None,
            reports_at: |_| true,
            limit_probe: |_| false,
            lose_ack: |_| false,
            filtered_per_probe: None,
            serves: None,
        }
    }
}

fn feed(run: &mut Run, sent: u64, who: &[Answerer], arrival: Arrival, sent_ttl: u32) {
    let mut counts = vec![0u32; who.len()];
    let mut drops = vec![0u32; who.len()];
    let mut limited = vec![0u32; who.len()];
    for seq in 0..sent {
        let tx = T0 + seq * 10 * MS;
        assert_eq!(run.record_send(tx), seq);
        for (i, a) in who.iter().enumerate() {
            if (a.drop_probe)(seq) {
                drops[i] += u32::from((a.host_dropped)(seq));
                continue;
            }
            if (a.limit_probe)(seq) {
                limited[i] += 1;
                continue;
            }
            // Probes leave every 10 ms and take 40 µs: one that joined `ms` after the first
            // probe receives the first one sent after that (the test drops the earlier ones);
            // one that joined before the run did so ten minutes earlier.
            let ext = a.reports.filter(|_| (a.reports_at)(seq)).map(|join| crate::wire::AckExt {
                host_drops: drops[i],
                join_delay_ns: Some(
                    join.map_or(600_000 * MS, |ms| (ms * MS).next_multiple_of(10 * MS) - ms * MS + 40_000),
                ),
                member_ns: Some(match join {
                    Some(ms) => (tx + 40_000).saturating_sub(T0 + ms * MS),
                    None => 600_000 * MS + seq * 10 * MS,
                }),
                filtered: a.filtered_per_probe.map(|k| k * seq as u32),
                heard: None,
                group: a.serves.filter(|_| arrival == Arrival::Unicast),
                join_leave: None,
                memberships: None,
            });
            counts[i] += 1;
            let ack = Ack {
                session: run.config().session,
                seq,
                tx_ns: tx,
                responder: a.id,
                rx_ns: tx + 40_000,
                dwell_ns: 10_000,
                // Every probe the responder took in, limited ones included.
                received: counts[i] + limited[i],
                ack_seq: counts[i] - 1,
                limited: limited[i],
                ttl: (sent_ttl as u8).saturating_sub(a.hops),
                arrival,
                ext,
                name: a.name.to_string(),
            };
            if (a.lose_ack)(seq) {
                continue;
            }
            // Jitter of a few µs so the percentiles are not all equal.
            let rtt = a.rtt_us * 1000 + (seq % 7) * 3_000;
            run.on_ack(&ack, a.from, tx + rtt);
        }
    }
    run.finalize_all();
}

fn config(session: u64) -> RunConfig {
    RunConfig {
        session,
        timeout_ns: 1000 * MS,
        interval_ns: 1000 * MS,
        intervals: false,
        plain: false,
        outage_min: 3,
        groups: 1,
        raw: false,
    }
}

/// A finished run of `sent` probes with multicast TTL `ttl`: `multicast` answer the group, and
/// each `(host, answerers)` of `unicast` is a `--hosts` host with those answering its probes.
pub(crate) fn outcome(sent: u64, ttl: u32, multicast: &[Answerer], unicast: &[(&str, Vec<Answerer>)]) -> Outcome {
    let mut run = Run::new(config(SESSION));
    feed(&mut run, sent, multicast, Arrival::Multicast, ttl);
    let unicast = unicast
        .iter()
        .enumerate()
        .map(|(i, (host, who))| {
            let mut run = Run::new(config(SESSION + 1 + i as u64));
            feed(&mut run, sent, who, Arrival::Unicast, crate::run::UNICAST_TTL);
            UnicastRun::new(host.parse::<IpAddr>().expect("an address"), run)
        })
        .collect();
    let mut lateness = Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static bounds");
    for ns in [500u64, 900, 1_200, 15_000] {
        lateness.record(ns).expect("in range");
    }
    Outcome {
        settings: crate::run::Settings::for_tests(SESSION, ttl, sent),
        run,
        unicast,
        ttl,
        lateness,
        send_span: Duration::from_millis(sent.saturating_sub(1) * 10),
        interrupted: false,
        elapsed: Duration::from_millis(sent * 10 + 1000),
        invalid: 0,
        forged: 0,
        local_drops: 0,
        send_errors: 0,
        local_addrs: vec!["10.0.0.100".parse().expect("an address")],
        keys: Default::default(),
        ack_watch: None,
    }
}
