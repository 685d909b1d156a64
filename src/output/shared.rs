//! Shared faults in JSON: renders [`SharedFaults`], decides nothing.

use serde::Serialize;

use crate::findings::SharedFaults;

#[derive(Serialize)]
pub(crate) struct JsonGroup {
    members: Vec<String>,
    everyone: bool,
    probes: u64,
    observed: u64,
    expected: f64,
    log10_p: Option<f64>,
}

#[derive(Serialize)]
pub(crate) struct JsonAlone {
    responder: String,
    probes: u64,
}

#[derive(Serialize)]
pub(crate) struct JsonShared {
    groups: Vec<JsonGroup>,
    alone: Vec<JsonAlone>,
}

impl From<&SharedFaults> for JsonShared {
    fn from(s: &SharedFaults) -> Self {
        JsonShared {
            groups: s
                .groups
                .iter()
                .map(|g| JsonGroup {
                    members: g.members.clone(),
                    everyone: g.everyone,
                    probes: g.probes,
                    observed: g.observed,
                    expected: (g.expected * 1e6).round() / 1e6,
                    // JSON has no -infinity: null for a probability that underflowed.
                    log10_p: g.log10_p.is_finite().then(|| (g.log10_p * 100.0).round() / 100.0),
                })
                .collect(),
            alone: s.alone.iter().map(|(n, p)| JsonAlone { responder: n.clone(), probes: *p }).collect(),
        }
    }
}
