//! `mcprobe max-rate`: the search with live progress, the table on stdout and the CSV files.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{emit, exit, iface_label};
use crate::cli::MaxRateArgs;
use crate::config;
use crate::folder::csv::AtomicCsv;
use crate::folder::meta::write_atomic;
use crate::folder::RunFolder;
use crate::maxrate::driver::Event;
use crate::output::max_rate::{self as output, ResultRow, TrialRow};

/// `mcprobe max-rate`.
pub(crate) fn max_rate(args: &MaxRateArgs, stop: &AtomicBool) -> Result<i32> {
    let (cfg, output) = config::max_rate(args)?;
    let (quiet, output_json, html) = (output.quiet, output.json, output.html);
    let search_id: u64 = rand::random();
    let folder = match &output.out {
        Some(dir) => Some(RunFolder::open(dir, output.force, search_id)?),
        None => None,
    };
    let mut trials_csv = folder
        .as_ref()
        .and_then(|f| f.writer().write(|dir| AtomicCsv::create::<TrialRow>(dir, "trials.csv", search_id)));
    if !quiet {
        eprintln!(
            "searching the highest rate with at most {}% loss at {} via {}: trials of {}, from {}/s up to {}/s",
            cfg.tolerance_pct,
            SocketAddr::new(cfg.probe.group, cfg.probe.port),
            iface_label(&cfg.probe.iface, cfg.probe.group),
            crate::output::progress::human(cfg.trial),
            cfg.search.start,
            cfg.search.max
        );
    }
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr_with_hz(5));
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:24}] {msg}")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        bar
    });
    let mut step = String::new();
    let outcome = crate::maxrate::driver::run(&cfg, stop, |ev| match ev {
        Event::TrialStart { index, rate, phase, best } => {
            let best = best.map_or("-".to_string(), |b| format!("{b}/s"));
            step = format!("trial {index} ({}) at {rate}/s · best so far {best}", phase.as_str());
            if let Some(b) = &bar {
                b.set_position(0);
                b.set_message(step.clone());
            }
        }
        Event::Progress(p) => {
            if let Some(b) = &bar {
                b.set_length(p.total.max(1));
                b.set_position(p.sent);
                let loss = p.worst_loss_pct.map_or("-".to_string(), |l| format!("{l:.2}%"));
                b.set_message(format!("{step} · {} responders · worst loss {loss}", p.responders));
            }
        }
        Event::TrialDone(t) => {
            if !quiet {
                let line = output::trial_line(t);
                match &bar {
                    Some(b) => b.println(line),
                    None => eprintln!("{line}"),
                }
            }
            if let (Some(f), Some(folder)) = (trials_csv.as_mut(), &folder) {
                folder.writer().write(|_| t.responders.iter().try_for_each(|r| f.write(&TrialRow::of(t, r))));
            }
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let mut outcome = outcome?;
    outcome.id = search_id;
    let mut folder_error = None;
    if let Some(folder) = folder {
        folder.writer().write(|dir| {
            if let Some(f) = trials_csv {
                f.commit()?;
            }
            let mut results = AtomicCsv::create::<ResultRow>(dir, "maxrate.csv", search_id)?;
            output::result_rows(&outcome).iter().try_for_each(|row| results.write(row))?;
            results.commit()?;
            let mut json = Vec::new();
            output::write_json(&mut json, &outcome, cfg.tolerance_pct)?;
            write_atomic(dir, crate::output::json::FILE, &json)?;
            if html {
                let command = crate::output::meta::redact(std::env::args().collect()).join(" ");
                write_atomic(
                    dir,
                    crate::output::html::REPORT,
                    output::html(&outcome, cfg.tolerance_pct, &command).as_bytes(),
                )?;
            }
            Ok(())
        });
        match folder.commit() {
            Ok(written) if !quiet => {
                let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
                eprintln!("wrote {}", names.join(", "));
            }
            Ok(_) => {}
            Err(e) => folder_error = Some(e),
        }
    }
    emit(|out| {
        if output_json {
            output::write_json(out, &outcome, cfg.tolerance_pct)
        } else {
            output::write_table(out, &outcome, cfg.tolerance_pct)
        }
    })?;
    let (code, lines) = exit::of_max_rate(outcome.weakest().map(|w| (w.name.as_str(), w.rate)), cfg.min_rate);
    lines.iter().for_each(|l| eprintln!("{l}"));
    Ok(exit::with_folder(code, folder_error.as_ref()))
}
