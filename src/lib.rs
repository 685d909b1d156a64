//! mcprobe: measure LAN multicast. See the README for the user's view; each module's docs say why
//! it is built the way it is.
//!
//! - [`wire`]: the packet format (pure); [`stats`]: per-responder accounting (pure);
//! - [`net`]: sockets; [`responder`] and [`prober`]: the two engines;
//! - [`findings`]: what a run found, typed (pure); [`report`] and [`progress`]: what the user sees;
//! - [`cli`]: flags (clap only); [`config`]: flags to validated configurations; [`app`]: the
//!   commands;
//! - [`serve`]: continuous probing exported to Prometheus; [`manual`]: completions, man page.

pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod doctor;
pub mod findings;
pub mod folder;
pub mod groups;
pub(crate) mod maxgroups;
pub mod maxrate;
pub mod mesh;
pub mod net;
pub mod output;
pub mod prober;
pub(crate) mod querier;
pub mod responder;
pub mod run;
pub mod serve;
pub mod stats;
pub mod stream;
pub mod wire;

/// The four pairings of old (version 1, before the ack extension) and new prober and
/// responder, across wire, responder and stats.
#[cfg(test)]
mod compat_tests;
