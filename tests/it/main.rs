//! The integration tests, one binary (as ripgrep and oha have it): each module runs the real
//! binary on loopback or in the namespace lab. One binary links the crate once instead of once
//! per file. `tests/stats_memory.rs` stays apart: its counting global allocator would count
//! every other test's allocations too.

mod common;

mod abuse_replay;
mod abuse_serve;
mod ack_extension;
mod ack_port;
mod bad_input;
mod diagnose;
mod hardening;
mod hdr_files;
mod json_schema;
mod lab_accuracy;
mod lab_faults;
mod lab_rate_mesh;
mod lab_unicast;
mod lab_watch;
mod lab_why;
mod layers;
mod loopback;
mod outputs;
mod plain;
mod rate_mesh_loopback;
mod report_browser;
mod report_merge;
mod serve;
mod serve_contrib;
mod serve_prometheus;
mod stats_edges;
mod version;
mod watch;
mod watch_contrib;
mod wire_props;
