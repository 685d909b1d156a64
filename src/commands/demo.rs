//! `mcprobe demo`: N responders on loopback, a short probe, the table and the report folder.

use std::io::Write;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use super::probe::Probed;
use super::{emit, exit, run_probe};
use crate::cli::DemoArgs;
use crate::config;
use crate::output;
use crate::responder::{Responder, ResponderConfig};

pub(crate) fn demo(args: &DemoArgs, stop: &AtomicBool) -> Result<i32> {
    // A port of our own, so the demo never meets a real responder of this host.
    let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
    let mut setup = config::demo(args, port)?;
    let out = setup.output.out.get_or_insert_with(demo_dir).clone();
    let cfg = &setup.probe;
    let responders_stop = AtomicBool::new(false);
    let probed = std::thread::scope(|s| -> Result<Probed> {
        let mut handles = Vec::new();
        for i in 0..args.responders {
            // Each demo "host" answers from its own loopback address, 127.0.0.2 and up.
            let r = Responder::bind(ResponderConfig {
                reply_from: Some(Ipv4Addr::new(127, 0, 0, i + 2)),
                ..config::responder_defaults(cfg.group, port, cfg.iface.clone(), format!("demo-{}", i + 1))
            })?;
            let stop_r = &responders_stop;
            handles.push(s.spawn(move || r.run(stop_r, |_| {})));
        }
        if !setup.output.quiet {
            eprintln!("started {} responders on loopback (127.0.0.2–127.0.0.{})", args.responders, args.responders + 1);
        }
        let result = run_probe(&setup, stop, None, |_, _| Ok(()));
        responders_stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a demo responder panicked"))??;
        }
        result
    })?;
    let found = &probed.found;
    if setup.output.json {
        emit(|o| output::write_json(o, found))?;
    } else {
        emit(|o| output::write_table(o, found))?;
        if setup.output.html && probed.folder_error.is_none() {
            emit(|o| writeln!(o, "report: {}", out.join(crate::output::html::REPORT).display()))?;
        }
    }
    Ok(probed.code(exit::OK))
}

fn demo_dir() -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    std::env::temp_dir().join(format!("mcprobe-demo-{secs}"))
}
