//! The catalogue of real-world faults (issue 19), one lab case per fault, each asserting the
//! cause mcprobe names (and that it names no wrong one).
mod host;
mod key;
mod run;
