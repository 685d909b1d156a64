//! The `max-rate` command: flags to a [`MaxRateConfig`], the search with live progress, the
//! table on stdout and the CSV files.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output::{self, ResultRow, TrialRow};
use super::search::SearchConfig;
use super::{Event, MaxRateConfig};
use crate::cli::commands::MaxRateArgs;
use crate::config;
use crate::net;
use crate::report::AtomicCsv;
use crate::wire;

/// The weakest responder is below `--min-rate`, or nobody answered.
pub(crate) const EXIT_BELOW: i32 = 1;

/// Flags to a validated search; errors name the flag and the value.
pub(crate) fn config_of(args: &MaxRateArgs) -> Result<MaxRateConfig> {
    let group = net::check_group(args.net.group)?;
    let iface = args.net.iface.as_deref().map(net::resolve_iface).transpose()?;
    let key = config::key_of(&args.key)?;
    let min_size = wire::MIN_PROBE_SIZE + if key.is_some() { wire::TAG_LEN } else { 0 };
    if (args.size as usize) < min_size {
        bail!("--size {}: keyed probes must be at least {min_size} bytes, room for a keyed ack", args.size);
    }
    let (start, max) = (args.start.round() as u64, args.max.round() as u64);
    if start < 1 || max < 1 {
        bail!("--start {} / --max {}: rates of at least 1 probe/s", args.start, args.max);
    }
    if start > max {
        bail!("--start {start}: above --max {max}");
    }
    if let Some(dir) = &args.out {
        if std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
            bail!("--out {}: is a file, not a folder", dir.display());
        }
    }
    let probe = crate::prober::ProbeConfig {
        ttl: args.ttl,
        size: args.size as usize,
        timeout: args.timeout,
        rcvbuf: args.net.rcvbuf,
        key,
        ack_port: config::ack_port(args.ack, args.net.port, 0, 1)?,
        ..config::probe_defaults(group, args.net.port, iface)
    };
    // Below the floor a responder is not searched further: --min-rate when given (below it the
    // answer is "too slow" anyway), else a tenth of the start.
    let floor = args.min_rate.map_or(start / 10, |m| m.round() as u64).clamp(1, start);
    Ok(MaxRateConfig {
        probe,
        search: SearchConfig { start, max, factor: 2.0, resolution: args.resolution / 100.0, floor },
        trial: args.trial,
        tolerance_pct: args.loss_tolerance,
        max_trials: args.max_trials,
    })
}

/// `mcprobe max-rate`.
pub fn max_rate(args: &MaxRateArgs, stop: &AtomicBool) -> Result<i32> {
    let cfg = config_of(args)?;
    let quiet = args.quiet;
    let search_id: u64 = rand::random();
    let mut trials_csv = match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("--out {}: cannot create the folder", dir.display()))?;
            Some(AtomicCsv::create::<TrialRow>(dir, "trials.csv", search_id)?)
        }
        None => None,
    };
    if !quiet {
        eprintln!(
            "searching the highest rate with at most {}% loss at {} via {}: trials of {}, from {}/s up to {}/s",
            args.loss_tolerance,
            SocketAddr::new(cfg.probe.group, cfg.probe.port),
            cfg.probe.iface.as_ref().map_or("the default interface", |i| i.name.as_str()),
            crate::progress::human(cfg.trial),
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
    let mut write_err = None;
    let outcome = super::run(&cfg, stop, |ev| match ev {
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
            if let Some(f) = trials_csv.as_mut() {
                for r in &t.responders {
                    if let Err(e) = f.write(&TrialRow::of(t, r)) {
                        write_err.get_or_insert(e);
                    }
                }
            }
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let mut outcome = outcome?;
    outcome.id = search_id;
    if let Some(e) = write_err {
        return Err(e);
    }
    if let (Some(dir), Some(f)) = (&args.out, trials_csv) {
        let mut written: Vec<PathBuf> = vec![f.commit()?];
        let mut results = AtomicCsv::create::<ResultRow>(dir, "maxrate.csv", search_id)?;
        for row in output::result_rows(&outcome) {
            results.write(&row)?;
        }
        written.push(results.commit()?);
        if !quiet {
            let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            eprintln!("wrote {}", names.join(", "));
        }
    }
    let mut out = std::io::stdout().lock();
    output::write_table(&mut out, &outcome, cfg.tolerance_pct)
        .and_then(|()| out.flush())
        .context("cannot write to stdout")?;
    let Some(weakest) = outcome.weakest() else { return Ok(EXIT_BELOW) };
    match args.min_rate {
        Some(min) if (weakest.rate as f64) < min => {
            eprintln!(
                "mcprobe: the weakest responder ({}) reached {}/s < --min-rate {min}",
                weakest.name, weakest.rate
            );
            Ok(EXIT_BELOW)
        }
        _ => Ok(0),
    }
}
