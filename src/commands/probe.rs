//! `mcprobe probe`, and [`run_probe`]: one probing run with its live progress, its report folder
//! and its findings, shared by `probe`, `discover`, `demo` and `mesh`.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;

use super::{emit, exit, iface_label, querier};
use crate::cli::ProbeArgs;
use crate::config::{self, ProbeSetup};
use crate::findings::Findings;
use crate::folder::{RunFolder, Streams};
use crate::net;
use crate::output;
use crate::output::progress::{human, LiveProgress};
use crate::prober;
use crate::querier::watch::QuerierWatch;
use crate::run::AckWatch;
use crate::run::Progress;
use crate::stats::{IntervalRow, RawRow};

pub(crate) fn probe(args: &ProbeArgs, stop: &AtomicBool) -> Result<i32> {
    let setup = config::probe(args)?;
    if setup.realtime {
        // Before any thread starts: the sender and the ack receiver inherit the policy.
        if let Err(why) = net::realtime() {
            eprintln!("notice: --realtime: {why}; probing with the normal scheduler");
        }
    }
    let p = &setup.probe;
    let watch = querier::start(&p.iface, p.group, setup.querier_wait, setup.output.quiet, "");
    let probed = run_probe(&setup, stop, watch, |_, _| Ok(()))?;
    let found = &probed.found;
    emit(|out| if setup.output.json { output::write_json(out, found) } else { output::write_table(out, found) })?;
    let (code, lines) = exit::of_run(found, setup.thresholds);
    lines.iter().for_each(|l| eprintln!("{l}"));
    Ok(probed.code(code))
}

/// A finished probing run: its findings, and whether its report folder could not be written
/// (said on stderr when it happened; the run still reports, and ends with exit code 2).
pub(crate) struct Probed {
    pub found: Findings,
    pub folder_error: Option<anyhow::Error>,
}

impl Probed {
    /// The exit code once the results are printed: a folder that could not be written is an
    /// environment error (2), whatever the run found.
    pub(crate) fn code(&self, code: i32) -> i32 {
        exit::with_folder(code, self.folder_error.as_ref())
    }
}

/// Runs the prober with progress, writes the report folder (with `extra` files from the caller)
/// and makes the findings.
pub(crate) fn run_probe(
    setup: &ProbeSetup,
    stop: &AtomicBool,
    watch: Option<Result<QuerierWatch, String>>,
    extra: impl FnOnce(&Findings, &std::path::Path) -> Result<()>,
) -> Result<Probed> {
    let (cfg, quiet) = (&setup.probe, setup.output.quiet);
    let folder = match setup.output.out.as_deref() {
        Some(dir) => Some(RunFolder::open(dir, setup.output.force, cfg.session)?),
        None => None,
    };
    let streams = folder.as_ref().map(|f| Streams::open(f.writer(), cfg.raw, cfg.session, cfg.report_interval));
    let sink = match (&folder, &streams) {
        (Some(f), Some(s)) => {
            let (s, w) = (Arc::clone(s), f.writer().clone());
            Some(Box::new(move |raw: &[RawRow], intervals: &[IntervalRow]| {
                s.lock().unwrap_or_else(|e| e.into_inner()).add(&w, raw, intervals);
                Ok(())
            }) as prober::RowSink)
        }
        _ => None,
    };
    if !quiet {
        eprintln!(
            "probing {} via {}: {} every {}, {} B{}, ttl {}; acks count as late after {}",
            groups_label(cfg),
            iface_label(&cfg.iface, cfg.group),
            crate::output::counted(cfg.count, "probe", "probes"),
            human(cfg.interval),
            cfg.plain.as_ref().map_or(cfg.size, Vec::len),
            prober::padded_size(cfg).map_or(String::new(), |n| format!(
                " ({n} B for the first and last 3 and one a second, so acks can carry names and host drops)"
            )),
            cfg.ttl,
            human(cfg.timeout)
        );
    }
    let mut live = LiveProgress::new(cfg.count, quiet);
    let mut said_grace = false;
    let mut on_progress = |p: &Progress| {
        live.update(p);
        if p.draining && !said_grace && !live.is_shown() {
            eprintln!("last probe sent; waiting {} for late acks", human(cfg.timeout));
            said_grace = true;
        }
    };
    // Quiet, nothing is shown as it goes: no progress to compute (see `prober::run`).
    let outcome = prober::run(cfg, stop, sink, (!quiet).then_some(&mut on_progress as &mut dyn FnMut(&Progress)));
    live.finish();
    let mut outcome = outcome?;
    let mut found = Findings::of(&outcome, setup.judgement);
    // Without the ack tap, a loss cannot be placed on this host's side or the network's: say so
    // once, when there was some.
    if let (Some(AckWatch::NotWatched(why)), false) = (&outcome.ack_watch, quiet) {
        if found.responders().next().is_none() || found.rows.iter().any(|r| r.figures.lost > 0) {
            eprintln!("mcprobe: {why}");
        }
    }
    if let Some(w) = watch {
        found = found.with_querier(w.map(QuerierWatch::finish));
    }
    let mut folder_error = None;
    if let (Some(folder), Some(streams)) = (folder, streams) {
        let html = setup.output.html;
        let name = setup.name.as_deref();
        match crate::folder::finish_run(folder, streams, &found, &mut outcome, html, name, |dir| extra(&found, dir)) {
            Ok(written) if !quiet => {
                let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
                eprintln!("wrote {}", names.join(", "));
            }
            Ok(_) => {}
            Err(e) => folder_error = Some(e),
        }
    }
    Ok(Probed { found, folder_error })
}

/// Where the probes go: `GROUP:PORT`, or with `--groups` how many groups, from which to which, and
/// how often each one gets a probe.
fn groups_label(cfg: &prober::ProbeConfig) -> String {
    match cfg.groups.as_slice() {
        [] | [_] => SocketAddr::new(cfg.group, cfg.port).to_string(),
        gs => format!(
            "{} groups ({} to {}, port {}; each one probe every {})",
            gs.len(),
            gs[0],
            gs[gs.len() - 1],
            cfg.port,
            human(cfg.interval * gs.len() as u32)
        ),
    }
}
