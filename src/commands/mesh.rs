//! `mcprobe mesh`: a responder on the group's port and a prober on its own socket, in one
//! process, then this host's row of the mesh.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{emit, exit, run_probe};
use crate::cli::MeshArgs;
use crate::config;
use crate::findings::{Findings, ResponderId, Verdict};
use crate::folder::csv::AtomicCsv;
use crate::mesh::{peer_rows, MeshRow, PeerRow};
use crate::output::progress::human;
use crate::responder::{Event, Responder};

/// `mcprobe mesh`.
pub(crate) fn mesh(args: &MeshArgs, stop: &AtomicBool) -> Result<i32> {
    let setup = config::mesh(args)?;
    let (me, name, quiet) = (setup.me, setup.name.clone(), setup.probe.output.quiet);
    let max_loss = setup.probe.judgement.threshold_pct;
    let responder = Responder::bind(setup.responder.clone())?;
    let probe = &setup.probe.probe;
    let responder_stop = AtomicBool::new(false);
    let (probed, own) = std::thread::scope(|s| -> Result<_> {
        let (tx, rx) = mpsc::channel();
        let answering = s.spawn(|| {
            responder.run(&responder_stop, move |ev| {
                if let Event::Listening { id } = ev {
                    let _ = tx.send(*id);
                }
            })
        });
        // The responder is joined before the first probe leaves: its own id tells its acks apart.
        let own = rx.recv_timeout(Duration::from_secs(5)).ok().map(ResponderId);
        if !quiet {
            eprintln!(
                "mesh: {name} ({me}) answers on {} and probes {} peers every {} for {} probes",
                SocketAddr::new(probe.group, probe.port),
                setup.peers.len(),
                human(probe.interval),
                probe.count
            );
        }
        let mesh_csv = |found: &Findings, dir: &Path| -> Result<()> {
            let mut f = AtomicCsv::create::<MeshRow>(dir, "mesh.csv", found.run.session)?;
            for r in &peer_rows(found, &setup.peers, own, max_loss) {
                f.write(&MeshRow::of(&name, me, r))?;
            }
            f.commit().map(|_| ())
        };
        let found = run_probe(&setup.probe, stop, None, mesh_csv);
        // Keep answering for peers that started later, unless the user asked to stop.
        let until = Instant::now() + setup.linger;
        if found.is_ok() && !quiet && !stop.load(Ordering::Relaxed) {
            eprintln!("answering peers for {} more", human(setup.linger));
        }
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        responder_stop.store(true, Ordering::Relaxed);
        answering.join().map_err(|_| anyhow::anyhow!("the responder thread panicked"))??;
        Ok((found?, own))
    })?;
    let rows = peer_rows(&probed.found, &setup.peers, own, max_loss);
    emit(|out| write_table(out, &name, me, &rows, max_loss))?;
    Ok(probed.code(exit::of_mesh(rows.iter().map(|r| r.verdict))))
}

fn write_table(w: &mut impl Write, name: &str, me: IpAddr, rows: &[PeerRow], max_loss: f64) -> std::io::Result<()> {
    writeln!(w, "mesh row of {name} ({me}); loss counted from each peer's first answer, bad above {max_loss}%")?;
    let pw = rows.iter().map(|r| r.host.to_string().len()).max().unwrap_or(4).max(4);
    let nw = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    writeln!(
        w,
        "{:<pw$}  {:<nw$}  {:>8}  {:>5}  {:>5}  {:>5}  {:>9}  {:>9}  {:>8}  {:>9}  VERDICT",
        "PEER", "NAME", "MC LOSS%", "FWD", "RET", "UNK", "MC P50us", "MC P99us", "UC LOSS%", "UC P50us"
    )?;
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let us = |v: Option<u64>| v.map_or("-".to_string(), |ns| format!("{:.0}", ns as f64 / 1000.0));
    for r in rows {
        let (m, u) = (r.multicast.as_ref(), r.unicast.as_ref());
        writeln!(
            w,
            "{:<pw$}  {:<nw$}  {:>8}  {:>5}  {:>5}  {:>5}  {:>9}  {:>9}  {:>8}  {:>9}  {}",
            r.host,
            r.name,
            m.map_or("-".to_string(), |f| format!("{:.3}", f.loss_pct())),
            opt(m.map(|f| f.forward_lost)),
            opt(m.map(|f| f.return_lost)),
            opt(m.map(|f| f.unknown_lost)),
            us(m.and_then(|f| f.rtt_p50_ns)),
            us(m.and_then(|f| f.rtt_p99_ns)),
            u.map_or("-".to_string(), |f| format!("{:.3}", f.loss_pct())),
            us(u.and_then(|f| f.rtt_p50_ns)),
            r.verdict.as_str()
        )?;
    }
    for r in rows.iter().filter(|r| r.verdict != Verdict::Ok) {
        writeln!(w, "{}: {}", r.host, r.verdict.explain())?;
    }
    Ok(())
}
