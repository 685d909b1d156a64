//! The `mesh` command: a responder on the group's port and a prober on its own ephemeral socket,
//! in one process, then this host's row of the mesh.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{peer_rows, MeshRow, PeerRow};
use crate::cli::commands::MeshArgs;
use crate::findings::{Judgement, ResponderId, Verdict};
use crate::net;
use crate::prober::ProbeConfig;
use crate::progress::human;
use crate::report::AtomicCsv;
use crate::responder::{Event, Responder, ResponderConfig};
use crate::{app, config, wire};

/// This host's interface addresses. Listed rather than probed by binding: with
/// `net.ipv4.ip_nonlocal_bind` any address binds.
fn local_addrs() -> Result<Vec<IpAddr>> {
    let addrs = nix::ifaddrs::getifaddrs().context("cannot list network interfaces")?;
    Ok(addrs
        .filter_map(|i| {
            let a = i.address?;
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect())
}

/// `mcprobe mesh`.
pub fn mesh(args: &MeshArgs, stop: &AtomicBool) -> Result<i32> {
    let group = net::check_group(args.net.group)?;
    let iface = args.net.iface.as_deref().map(net::resolve_iface).transpose()?;
    let hosts = config::expected_hosts(&args.hosts, args.hosts_file.as_deref(), group)?;
    let local = local_addrs()?;
    let (mine, peers): (Vec<IpAddr>, Vec<IpAddr>) = hosts.iter().partition(|h| local.contains(h));
    let Some(&me) = mine.first() else {
        let list: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        bail!(
            "--hosts {}: none of them is an address of this host; list every host of the mesh, this one included",
            list.join(",")
        );
    };
    if peers.is_empty() {
        bail!("--hosts: lists only this host ({me}); a mesh needs at least one peer");
    }
    let name = match &args.name {
        Some(n) if n.len() > wire::MAX_NAME_LEN => bail!("--name {n}: at most {} bytes", wire::MAX_NAME_LEN),
        Some(n) if n.is_empty() => bail!("--name: an empty name; leave it out to use the host name"),
        Some(n) => n.clone(),
        None => wire::truncate_utf8(&gethostname::gethostname().to_string_lossy(), wire::MAX_NAME_LEN).to_string(),
    };
    if let Some(dir) = &args.out {
        if std::fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
            bail!("--out {}: is a file, not a folder", dir.display());
        }
    }
    let key = config::key_of(&args.key)?;
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let probe = ProbeConfig {
        ttl: args.ttl,
        interval,
        count: ((args.duration.as_secs_f64() * args.rate).round() as u64).max(1),
        timeout: args.timeout,
        intervals: args.out.is_some(),
        rcvbuf: args.net.rcvbuf,
        key: key.clone(),
        hosts: peers.clone(),
        ack_port: config::ack_port(args.ack, args.net.port, peers.len(), 1)?,
        ..config::probe_defaults(group, args.net.port, iface.clone())
    };
    let keyed = key.is_some();
    // Every peer probes at --rate on two paths; the default limits are far above a mesh's rate.
    let responder = Responder::bind(ResponderConfig {
        rcvbuf: args.net.rcvbuf,
        key,
        tap: true,
        ..config::responder_defaults(group, args.net.port, iface, name.clone())
    })?;
    let judgement = Judgement { threshold_pct: args.max_loss, group: SocketAddr::new(group, args.net.port), keyed };
    let responder_stop = AtomicBool::new(false);
    let (found, own) = std::thread::scope(|s| -> Result<_> {
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
        if !args.quiet {
            eprintln!(
                "mesh: {name} ({me}) answers on {} and probes {} peers at {}/s for {}",
                SocketAddr::new(group, args.net.port),
                peers.len(),
                args.rate,
                human(args.duration)
            );
        }
        let found = app::run_probe(&probe, args.out.as_deref(), args.quiet, stop, judgement, None, false);
        // Keep answering for peers that started later, unless the user asked to stop.
        let until = Instant::now() + args.linger;
        if found.is_ok() && !args.quiet && !stop.load(Ordering::Relaxed) {
            eprintln!("answering peers for {} more", human(args.linger));
        }
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        responder_stop.store(true, Ordering::Relaxed);
        answering.join().map_err(|_| anyhow::anyhow!("the responder thread panicked"))??;
        Ok((found?, own))
    })?;
    let rows = peer_rows(&found, &peers, own, args.max_loss);
    if let Some(dir) = &args.out {
        let mut f = AtomicCsv::create::<MeshRow>(dir, "mesh.csv", found.run.session)?;
        for r in &rows {
            f.write(&MeshRow::of(&name, me, r))?;
        }
        let path = f.commit()?;
        if !args.quiet {
            eprintln!("wrote {}", path.display());
        }
    }
    let mut out = std::io::stdout().lock();
    write_table(&mut out, &name, me, &rows, args.max_loss)
        .and_then(|()| out.flush())
        .context("cannot write to stdout")?;
    // As `probe --hosts`: multicast broken where unicast works (3) before any other trouble (1).
    Ok(if rows.iter().any(|r| r.verdict == Verdict::MulticastLost) {
        app::EXIT_MULTICAST_BROKEN
    } else if rows.iter().any(|r| r.verdict != Verdict::Ok) {
        app::EXIT_THRESHOLD
    } else {
        app::EXIT_OK
    })
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
