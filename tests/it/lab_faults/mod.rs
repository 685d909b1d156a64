//! The catalogue of real-world faults (issue 19), one lab case per fault, each asserting the
//! cause mcprobe names (and that it names no wrong one).
mod config;
mod host;
mod key;
mod network;
mod run;
