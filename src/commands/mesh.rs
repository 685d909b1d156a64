//! `mcprobe mesh`: a responder on the group's port and a prober on its own socket, in one
//! process, then this host's row of the mesh.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{emit, exit, run_probe};
use crate::cli::MeshArgs;
use crate::config;
use crate::findings::{Findings, ResponderId};
use crate::folder::csv::AtomicCsv;
use crate::mesh::{peer_rows, MeshRow};
use crate::output;
use crate::output::progress::human;
use crate::responder::{Event, Responder};

/// `mcprobe mesh`.
pub(crate) fn mesh(args: &MeshArgs, stop: &AtomicBool) -> Result<i32> {
    let mut setup = config::mesh(args)?;
    let (me, quiet) = (setup.me, setup.probe.output.quiet);
    let responder = Responder::bind(setup.responder.clone())?;
    let responder_stop = AtomicBool::new(false);
    let probed = std::thread::scope(|s| -> Result<_> {
        let (tx, rx) = mpsc::channel();
        let answering = s.spawn(|| {
            responder.run(&responder_stop, move |ev| {
                if let Event::Listening { id } = ev {
                    let _ = tx.send(*id);
                }
            })
        });
        // The responder is joined before the first probe leaves: its own id tells its acks (back
        // through multicast loop) apart from the peers'.
        setup.probe.judgement.own = rx.recv_timeout(Duration::from_secs(5)).ok().map(ResponderId);
        let (probe, name, peers) = (&setup.probe.probe, &setup.name, &setup.peers);
        if !quiet {
            eprintln!(
                "mesh: {name} ({me}) answers on {} and probes {} every {} for {}",
                SocketAddr::new(probe.group, probe.port),
                crate::output::counted(peers.len() as u64, "peer", "peers"),
                human(probe.interval),
                crate::output::counted(probe.count, "probe", "probes")
            );
        }
        let mesh_csv = |found: &Findings, dir: &Path| -> Result<()> {
            let mut f = AtomicCsv::create::<MeshRow>(dir, "mesh.csv", found.run.session)?;
            peer_rows(found, peers).iter().try_for_each(|r| f.write(&MeshRow::of(name, me, r)))?;
            f.commit().map(|_| ())
        };
        let probed = run_probe(&setup.probe, stop, None, mesh_csv);
        // Keep answering for peers that started later, unless the user asked to stop.
        let until = Instant::now() + setup.linger;
        if probed.is_ok() && !quiet && !stop.load(Ordering::Relaxed) {
            eprintln!("answering peers for {} more", human(setup.linger));
        }
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        responder_stop.store(true, Ordering::Relaxed);
        answering.join().map_err(|_| anyhow::anyhow!("the responder thread panicked"))??;
        probed
    })?;
    let found = &probed.found;
    let rows = peer_rows(found, &setup.peers);
    let max_loss = setup.probe.judgement.threshold_pct;
    emit(|out| {
        if setup.probe.output.json {
            output::write_json(out, found)
        } else {
            output::mesh::write_mesh(out, found, &setup.name, me, &rows, max_loss)
        }
    })?;
    Ok(probed.code(exit::of_mesh(rows.iter().map(|r| r.verdict))))
}
