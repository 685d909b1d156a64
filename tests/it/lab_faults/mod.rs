//! Faults injected in the namespace lab, one case each, asserting the cause mcprobe names (and that it names no wrong one).
mod host;
