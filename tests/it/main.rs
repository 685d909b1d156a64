//! The integration tests, one binary (as ripgrep and oha have it): each module runs the real
//! binary on loopback or in the namespace lab. One binary links the crate once instead of once
//! per file. `tests/stats_memory.rs` stays apart: its counting global allocator would count
//! every other test's allocations too.

mod common;

mod abuse_prober;
mod abuse_replay;
mod abuse_report;
mod abuse_serve;
mod ack_extension;
mod ack_port;
mod bad_input;
mod clock_step;
mod csv_injection;
mod diagnose;
mod hardening;
mod hdr_files;
mod json_schema;
mod lab_accuracy;
mod lab_faults;
mod lab_groups;
mod lab_join_leave;
mod lab_max_groups;
mod lab_rate_mesh;
mod lab_serve_mesh;
mod lab_unicast;
mod lab_watch;
mod lab_why;
mod layers;
mod loopback;
mod mesh_contrib;
mod outputs;
mod plain;
mod rate_mesh_loopback;
mod realtime;
mod report_browser;
mod report_merge;
mod responder_log;
mod serve;
mod serve_contrib;
mod serve_groups;
mod serve_mesh;
mod serve_prometheus;
mod serve_watch;
mod stats_edges;
mod version;
mod watch;
mod watch_contrib;
mod wire_props;
