//! The catalogue of real-world faults (issue 19), one lab case per fault, each asserting what `probe --hosts` says.
mod key;
mod run;
