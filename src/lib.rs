//! mcprobe: measure LAN multicast. See the README for the user's view; each module's docs say why
//! it is built the way it is.
//!
//! - [`wire`]: the packet format (pure); [`stats`]: per-responder accounting (pure);
//! - [`net`]: sockets; [`responder`] and [`prober`]: the two engines;
//! - [`findings`]: what a run found, typed (pure); [`report`] and [`progress`]: what the user sees;
//! - [`cli`]: flags (clap only); [`config`]: flags to validated configurations; [`app`]: the
//!   commands;
//! - [`serve`]: continuous probing exported to Prometheus; [`manual`]: completions, man page.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod findings;
pub(crate) mod hdr;
pub(crate) mod html;
pub mod manual;
pub mod maxrate;
pub mod mesh;
pub(crate) mod meta;
pub mod net;
pub(crate) mod outfiles;
pub mod prober;
pub(crate) mod progress;
pub(crate) mod querier;
pub mod report;
pub mod responder;
pub mod serve;
pub mod stats;
pub(crate) mod watch;
pub mod wire;

/// The four pairings of old (version 1, before the ack extension) and new prober and
/// responder, across wire, responder and stats.
#[cfg(test)]
mod compat_tests;
