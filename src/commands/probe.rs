//! `mcprobe probe`, and [`run_probe`]: one probing run with its live progress, its report folder
//! and its findings, shared by `probe`, `discover`, `demo` and `mesh`.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

use super::{emit, exit, iface_label, querier};
use crate::cli::ProbeArgs;
use crate::config::{self, ProbeSetup};
use crate::findings::Findings;
use crate::folder::csv::{self as files, StreamedCsvs};
use crate::output;
use crate::output::progress::{human, LiveProgress};
use crate::prober;
use crate::querier::watch::QuerierWatch;
use crate::stats::{IntervalRow, RawRow};

pub(crate) fn probe(args: &ProbeArgs, stop: &AtomicBool) -> Result<i32> {
    let setup = config::probe(args)?;
    let p = &setup.probe;
    let watch = querier::start(&p.iface, p.group, setup.querier_wait, setup.output.quiet, "");
    let found = run_probe(&setup, stop, watch)?;
    emit(|out| {
        if setup.output.json {
            return output::write_json(out, &found);
        }
        output::write_table(out, &found)?;
        found.diagnosis.as_ref().map_or(Ok(()), |d| output::write_diagnosis(out, d))?;
        output::querier::write_diagnosis_lines(out, &found)
    })?;
    let (code, lines) = exit::of_run(&found, setup.thresholds);
    lines.iter().for_each(|l| eprintln!("{l}"));
    Ok(code)
}

/// Runs the prober with progress, writes the report folder and makes the findings.
pub(crate) fn run_probe(
    setup: &ProbeSetup,
    stop: &AtomicBool,
    watch: Option<Result<QuerierWatch, String>>,
) -> Result<Findings> {
    let (cfg, quiet) = (&setup.probe, setup.output.quiet);
    let out = setup.output.out.as_deref();
    let streamed = match out {
        Some(dir) => {
            let removed = files::prepare_dir(dir)?;
            if !removed.is_empty() && !quiet {
                eprintln!("replacing the files of an earlier run in {}: {}", dir.display(), removed.join(", "));
            }
            Some(Arc::new(Mutex::new(StreamedCsvs::create(dir, cfg.raw, cfg.session)?)))
        }
        None => None,
    };
    let hlog = crate::folder::hlog(cfg.report_interval);
    let sink = streamed.clone().map(|f| -> prober::RowSink {
        let hlog = hlog.clone();
        Box::new(move |raw: &[RawRow], intervals: &[IntervalRow]| {
            f.lock().unwrap_or_else(|e| e.into_inner()).write(raw, intervals)?;
            crate::folder::add_intervals(&hlog, intervals)
        })
    });
    if !quiet {
        eprintln!(
            "probing {} via {}: {} probes every {}, {} B{}, ttl {}; acks count as late after {}",
            SocketAddr::new(cfg.group, cfg.port),
            iface_label(&cfg.iface, cfg.group),
            cfg.count,
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
    let outcome = prober::run(cfg, stop, sink, |p| {
        live.update(p);
        if p.draining && !said_grace && !quiet && !live.is_shown() {
            eprintln!("last probe sent; waiting {} for late acks", human(cfg.timeout));
            said_grace = true;
        }
    });
    live.finish();
    let mut outcome = outcome?;
    let mut found = Findings::of(&outcome, setup.judgement);
    if let Some(w) = watch {
        found = found.with_querier(w.map(QuerierWatch::finish));
    }
    if let (Some(dir), Some(files)) = (out, streamed) {
        let mut written = files::write_final_csvs(dir, &found)?;
        let files = Arc::into_inner(files).context("the report writer is still in use")?;
        written.extend(files.into_inner().unwrap_or_else(|e| e.into_inner()).commit()?);
        written.extend(crate::folder::finish(dir, &mut outcome, hlog, &written, setup.output.html)?);
        if !quiet {
            let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            eprintln!("wrote {}", names.join(", "));
        }
    }
    Ok(found)
}
