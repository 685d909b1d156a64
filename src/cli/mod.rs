//! Command-line definitions (clap derive) and the value parsers they use. No behaviour here.
//!
//! - [`flags`]: the flag groups the commands share, each flag defined once;
//! - [`commands`]: each command's own flags, made of those groups;
//! - [`parse`]: the value parsers.

use clap::{Parser, Subcommand};

pub mod commands;
pub mod doctor;
pub mod flags;
pub mod parse;
pub mod watch;

pub use commands::*;
pub use flags::*;
pub use parse::*;

/// `mcprobe --version`: the package version and the git commit the binary was built from
/// (build.rs: `git rev-parse --short HEAD`, `-dirty` for uncommitted changes, else
/// MCPROBE_COMMIT, else `unknown`).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("MCPROBE_COMMIT"), ")");

const EXAMPLES: &str = "\
Examples:
  mcprobe demo                                   5 responders on loopback, a 3-second probe
  mcprobe respond --iface eth0                   on every host of the LAN
  mcprobe probe --iface eth0 --duration 30s --out report/
  mcprobe probe --iface eth0 --rate 1000 --count 10000 --max-loss 0.1 --min-hosts 12
  mcprobe probe --iface eth0 --hosts-file cluster.txt --preset soak
  mcprobe discover --iface eth0                  who answers, in under a second
  mcprobe report h1/ h2/ --out lan/              report.html from --out folders, merged

Exit codes: 0 success; 1 a threshold (--max-loss, --min-responders, --min-hosts) was not met,
an expected host (--hosts) is not ok, or no responder answered at all; 2 usage or environment
error (bad flag value, unknown interface, port in use); 3 multicast broken where unicast works
(--hosts); 130 a second Ctrl-C (the first one stops the run and still reports).";

#[derive(Debug, Parser)]
#[command(
    name = "mcprobe",
    version = VERSION,
    about = "Measure LAN multicast: which hosts answer, their latency and their loss",
    long_about = "Measure LAN multicast. A prober sends numbered probes to a multicast group; a \
responder on every host answers each one with a unicast ack. mcprobe reports, per responder, \
RTT percentiles from a histogram, loss split into forward (probe lost) and return (ack lost), \
duplicates, reordering, jitter and time to the first ack, and says why multicast fails where it \
does.",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Every command that takes numbers reads "-1" as a value (`allow_negative_numbers`), so that a
/// negative number gets its flag's own error ("invalid value '-1' for '--count'"), not "unexpected
/// argument '-1'".
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join the group and answer every probe with an ack (run on each host; until Ctrl-C).
    #[command(allow_negative_numbers = true)]
    Respond(RespondArgs),
    /// Send probes to the group and report every responder's latency and loss.
    #[command(allow_negative_numbers = true)]
    Probe(ProbeArgs),
    /// A short burst: list the responders that answer (name, address, RTT) and count them.
    #[command(allow_negative_numbers = true)]
    Discover(DiscoverArgs),
    /// Start responders on loopback, probe them for a few seconds, print and save the report.
    #[command(allow_negative_numbers = true)]
    Demo(DemoArgs),
    /// Find each responder's highest loss-free probe rate (RFC 2544 throughput, per receiver).
    #[command(allow_negative_numbers = true)]
    MaxRate(MaxRateArgs),
    /// Find how many groups each responder can join and still get (RFC 3918 group capacity).
    #[command(allow_negative_numbers = true)]
    MaxGroups(MaxGroupsArgs),
    /// Every host of a list answers and probes every other one; each prints its row of the mesh.
    #[command(allow_negative_numbers = true)]
    Mesh(MeshArgs),
    /// Write report.html from report folders (`--out` of probe, mesh, demo); several are merged.
    Report(ReportArgs),
    /// Probe without end and serve the figures to Prometheus (/metrics).
    #[command(allow_negative_numbers = true)]
    Serve(ServeArgs),
    /// Watch real streams (RTP, MPEG-TS, sequenced feeds) live or from a capture: rate,
    /// microbursts, gaps, loss, jitter, MDI.
    #[command(allow_negative_numbers = true)]
    Watch(watch::WatchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the man page (roff), or a subcommand's.
    Man(ManArgs),
    /// Check this host for what silently breaks multicast, with the command that fixes each.
    #[command(allow_negative_numbers = true)]
    Doctor(doctor::DoctorArgs),
}

impl Command {
    /// `--quiet`, for commands that have it.
    pub fn quiet(&self) -> bool {
        match self {
            Command::Respond(a) => a.quiet,
            Command::Probe(a) => a.output.quiet,
            Command::Discover(a) => a.output.quiet,
            Command::Demo(a) => a.output.quiet,
            Command::MaxRate(a) => a.output.quiet,
            Command::MaxGroups(a) => a.quiet,
            Command::Mesh(a) => a.output.quiet,
            Command::Serve(a) => a.quiet,
            Command::Watch(a) => a.output.quiet,
            Command::Report(_) | Command::Completions(_) | Command::Man(_) | Command::Doctor(_) => false,
        }
    }
}

#[cfg(test)]
mod tests;
