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
pub mod cli_extra;
pub mod config;
pub mod findings;
pub mod manual;
pub mod maxrate;
pub mod mesh;
pub mod net;
pub mod prober;
pub mod progress;
pub mod report;
pub mod responder;
pub mod serve;
pub mod stats;
pub mod wire;
