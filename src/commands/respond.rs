//! `mcprobe respond`: answers probes until Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;

use anyhow::Result;

use super::{emit, exit, iface_label, querier};
use crate::cli::RespondArgs;
use crate::config;
use crate::responder::{Event, Responder};
use crate::stats::format_id;

pub(crate) fn respond(args: &RespondArgs, stop: &AtomicBool) -> Result<i32> {
    let cfg = config::respond(args)?;
    let (name, group, port, iface, source) = (cfg.name.clone(), cfg.group, cfg.port, cfg.iface.clone(), cfg.source);
    let groups = cfg.groups.clone();
    let responder = Responder::bind(cfg)?;
    let at = match groups.as_slice() {
        [] | [_] => SocketAddr::new(group, port).to_string(),
        gs => format!(
            "{} groups ({} to {}, port {port}; on {} sockets)",
            gs.len(),
            gs[0],
            gs[gs.len() - 1],
            responder.sockets()
        ),
    };
    let watch = querier::start(&iface, group, args.querier.querier_wait, args.quiet, "");
    let quiet = args.quiet;
    let mut failed = None;
    use crate::responder::prober_log;
    let mut probers = prober_log::ProberLog::default();
    let counters = responder.run(stop, |ev| {
        if quiet || failed.is_some() {
            return;
        }
        let line = match ev {
            Event::Listening { id } => format!(
                "responder {name} (id {}) listening on {}{} via {}",
                format_id(*id),
                at,
                source.map_or(String::new(), |s| format!(" from source {s}")),
                iface_label(&iface, group)
            ),
            Event::NewSession { session, from, ttl, arrival, join_delay_ns } => {
                use crate::responder::prober_log::SessionLine;
                // One line per prober (serve's windows are one), new probers throttled.
                let SessionLine::Show { unshown } = probers.on_session(*session, from.ip(), crate::net::now_ns())
                else {
                    return;
                };
                let join = join_delay_ns.map_or(String::new(), |ns| {
                    format!("; joined during it, first probe {:.3} ms after joining (join delay)", ns as f64 / 1e6)
                });
                let unshown = match unshown {
                    0 => String::new(),
                    n => format!(" ({n} sessions of other new probers not shown before it)"),
                };
                format!("session {} from {from}: ttl {ttl}, {}{join}{unshown}", format_id(*session), arrival.as_str())
            }
            other => crate::responder::notice::describe(other),
        };
        failed = emit(|out| writeln!(out, "{line}")).err();
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if !quiet {
        let c = counters;
        emit(|out| {
            writeln!(
                out,
                "stopped: {}, {}, {} sent, {} sent; ignored {} invalid datagrams, {} other mcprobe messages, {} probes too small to answer, {} rate-limited, {} over the total budget, {} from sources not allowed, {} unauthenticated, {} unbound (older keyed probers), {} stale (clock skew), {} replayed, {} from another address than their session's; {} send errors; {} local drops{}{}",
                crate::output::counted(c.sessions, "session", "sessions"),
                crate::output::counted(c.probes, "probe", "probes"),
                crate::output::counted(c.acks_sent, "ack", "acks"),
                crate::output::counted(c.notices, "notice", "notices"),
                c.invalid, c.ignored, c.too_small, c.limited, c.over_budget, c.denied, c.unauthenticated, c.unbound, c.stale, c.replayed, c.wrong_source, c.send_errors, c.local_drops,
                if c.filtered > 0 { format!("; {} probes reached this host's interface but never the socket (dropped by this host)", c.filtered) } else { String::new() },
                match probers.unshown() {
                    0 => String::new(),
                    n => format!("; {n} sessions of new probers not shown (at most {} lines every {} s)", prober_log::NEW_PROBER_LINES, prober_log::PERIOD_NS / 1_000_000_000),
                }
            )
        })?;
    }
    if let (Some(Ok(w)), false) = (watch, quiet) {
        let lines = querier::closing_lines(w);
        emit(|out| lines.iter().try_for_each(|l| writeln!(out, "{l}")))?;
    }
    Ok(exit::OK)
}
