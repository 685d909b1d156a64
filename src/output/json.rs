//! `--json`: the findings as one JSON document, described by `docs/report.schema.json`.
//!
//! Integers that can exceed 2^53 (the `*_unix_ns` times) are written as decimal strings: most
//! JSON tools read every number as a double and would round them.

use std::io::{self, Write};

use serde::Serialize;

use super::csv::{OutageRow, SummaryRow};
use crate::findings::diagnosis::{Advice, Verdict};
use crate::findings::{Diagnosis, Findings};

/// The JSON's file name in a report folder (report.html shows its findings).
pub(crate) const FILE: &str = "report.json";

/// An integer written as a string, for the consumers that read numbers as doubles.
#[derive(Serialize)]
#[serde(transparent)]
struct BigInt(#[serde(serialize_with = "serialize_display")] u64);

fn serialize_display<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

#[derive(Serialize)]
struct JsonOutage {
    responder: String,
    responder_id: String,
    start_s: f64,
    end_s: Option<f64>,
    duration_s: Option<f64>,
    probes_lost: u64,
    first_lost_seq: u64,
    start_unix_ns: BigInt,
    end_unix_ns: Option<BigInt>,
}

impl From<OutageRow> for JsonOutage {
    fn from(o: OutageRow) -> Self {
        JsonOutage {
            responder: o.responder,
            responder_id: o.responder_id,
            start_s: o.start_s,
            end_s: o.end_s,
            duration_s: o.duration_s,
            probes_lost: o.probes_lost,
            first_lost_seq: o.first_lost_seq,
            start_unix_ns: BigInt(o.start_unix_ns),
            end_unix_ns: o.end_unix_ns.map(BigInt),
        }
    }
}

#[derive(Serialize)]
struct JsonHost {
    host: String,
    responder: String,
    multicast_received: u64,
    multicast_loss_pct: f64,
    unicast_received: u64,
    unicast_loss_pct: f64,
    hops: Option<u8>,
    verdict: &'static str,
    advice: String,
    /// Every cause the evidence leaves, likeliest first (the first is the one named); empty
    /// when the host is ok.
    causes: Vec<JsonCause>,
    /// With the key-mismatch verdict: what the host said about the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_evidence: Option<JsonKeyEvidence>,
}

/// One cause of a host's verdict, with its evidence in the words.
#[derive(Serialize)]
struct JsonCause {
    kind: &'static str,
    text: String,
}

/// A host's key evidence (`crate::run::KeyCounts`).
#[derive(Serialize)]
struct JsonKeyEvidence {
    key_needed_notices: u64,
    other_key_notices: u64,
    unkeyed_acks: u64,
}

#[derive(Serialize)]
struct JsonDiagnosis {
    hosts: Vec<JsonHost>,
    unexpected: Vec<String>,
}

impl From<&Diagnosis> for JsonDiagnosis {
    fn from(d: &Diagnosis) -> Self {
        let hosts = d
            .hosts
            .iter()
            .map(|h| JsonHost {
                host: h.host.to_string(),
                responder: h.responders.join(" "),
                multicast_received: h.multicast_received,
                multicast_loss_pct: h.multicast_loss_pct,
                unicast_received: h.unicast_received,
                unicast_loss_pct: h.unicast_loss_pct,
                hops: h.hops,
                verdict: h.verdict.as_str(),
                advice: h.advice_text(),
                causes: h
                    .causes()
                    .filter(|_| h.verdict != Verdict::Ok)
                    .map(|a| JsonCause { kind: a.kind(), text: h.text_of(a) })
                    .collect(),
                key_evidence: match h.advice {
                    Advice::KeyMismatch(c) => Some(JsonKeyEvidence {
                        key_needed_notices: c.key_needed,
                        other_key_notices: c.other_key,
                        unkeyed_acks: c.unkeyed_acks,
                    }),
                    _ => None,
                },
            })
            .collect();
        let unexpected = d.unexpected.iter().map(|(n, a)| format!("{n} ({a})")).collect();
        JsonDiagnosis { hosts, unexpected }
    }
}

#[derive(Serialize)]
struct JsonReport {
    session: String,
    sent: u64,
    elapsed_s: f64,
    interrupted: bool,
    send_lateness_p50_us: f64,
    send_lateness_p99_us: f64,
    /// The rate the probes left at (null for fewer than two probes).
    sent_per_s: Option<f64>,
    foreign_acks: u64,
    invalid: u64,
    forged_acks: u64,
    local_drops: u64,
    send_errors: u64,
    responders: Vec<SummaryRow>,
    outages: Vec<JsonOutage>,
    /// Every finding in words, as the table and report.html say them.
    findings: Vec<super::words::Said>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diagnosis: Option<JsonDiagnosis>,
    /// Losses several responders share, and each one's own.
    shared_faults: super::shared::JsonShared,
    /// Membership queriers heard while probing (absent when no watch was asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    querier: Option<super::querier::JsonQuerierWatch>,
    /// Where along the hosts' paths packets disappeared (the packet taps).
    host_path: super::host_path::JsonHostPath,
    /// With --groups: which responder reached which group.
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<JsonGroups>,
}

#[derive(Serialize)]
struct JsonGroups {
    count: usize,
    per_group_rate: f64,
    responders: Vec<JsonGroupReach>,
    reached_by_none: Vec<String>,
}

#[derive(Serialize)]
struct JsonGroupReach {
    responder: String,
    responder_id: String,
    address: String,
    reached: usize,
    missing: Vec<String>,
    lossy: Vec<String>,
}

impl From<&crate::findings::groups::GroupsFinding> for JsonGroups {
    fn from(g: &crate::findings::groups::GroupsFinding) -> Self {
        let names = |idx: Vec<usize>| idx.into_iter().map(|i| g.groups[i].to_string()).collect();
        JsonGroups {
            count: g.groups.len(),
            per_group_rate: g.per_group_rate,
            responders: g
                .responders
                .iter()
                .map(|r| JsonGroupReach {
                    responder: r.responder.name.clone(),
                    responder_id: r.responder.id.to_string(),
                    address: r.responder.addr.to_string(),
                    reached: r.reached(),
                    missing: names(r.missing()),
                    lossy: names(r.lossy()),
                })
                .collect(),
            reached_by_none: names(g.reached_by_none()),
        }
    }
}

pub(crate) fn write_json(w: &mut impl Write, f: &Findings) -> io::Result<()> {
    let us = |d: Option<std::time::Duration>| d.map_or(0.0, |d| (d.as_nanos() as f64 / 10.0).round() / 100.0);
    let report = JsonReport {
        session: format!("{:016x}", f.run.session),
        sent: f.run.sent,
        elapsed_s: f.run.elapsed.as_secs_f64(),
        interrupted: f.run.interrupted,
        send_lateness_p50_us: us(f.run.lateness_p50),
        send_lateness_p99_us: us(f.run.lateness_p99),
        sent_per_s: f.run.sent_per_s.map(|r| (r * 10.0).round() / 10.0),
        foreign_acks: f.run.foreign_acks,
        invalid: f.run.invalid,
        forged_acks: f.run.forged,
        local_drops: f.run.local_drops,
        send_errors: f.run.send_errors,
        responders: f.rows.iter().map(|r| SummaryRow::of(r, &f.run)).collect(),
        outages: f.outages.iter().map(|o| OutageRow::of(o).into()).collect(),
        findings: super::words::all(f),
        diagnosis: f.diagnosis.as_ref().map(JsonDiagnosis::from),
        shared_faults: (&f.shared).into(),
        querier: f.querier.as_ref().map(Into::into),
        host_path: (&f.host_path).into(),
        groups: f.groups.as_ref().map(Into::into),
    };
    serde_json::to_writer_pretty(&mut *w, &report)?;
    writeln!(w)
}
