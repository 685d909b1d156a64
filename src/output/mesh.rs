//! `mesh`'s table: this host's row of the mesh.

use std::io::{self, Write};
use std::net::IpAddr;

use crate::findings::Findings;
use crate::mesh::PeerRow;

/// This host's row of the mesh: per peer, both paths and the verdict, then every finding in
/// words (as the probe table has them). Loss counts from each peer's first answer on each path.
pub(crate) fn write_mesh(
    w: &mut impl Write,
    f: &Findings,
    name: &str,
    me: IpAddr,
    rows: &[PeerRow],
    max_loss: f64,
) -> io::Result<()> {
    writeln!(w, "mesh row of {name} ({me}); loss counted from each peer's first answer, bad above {max_loss}%")?;
    let pw = rows.iter().map(|r| r.host.to_string().len()).max().unwrap_or(4).max(4);
    let nw = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    writeln!(
        w,
        "{:<pw$}  {:<nw$}  {:>8}  {:>5}  {:>5}  {:>5}  {:>9}  {:>9}  {:>8}  {:>9}  VERDICT",
        "PEER", "NAME", "MC LOSS%", "FWD", "RET", "UNK", "MC P50 µs", "MC P99 µs", "UC LOSS%", "UC P50 µs"
    )?;
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let us = |v: Option<u64>| v.map_or("-".to_string(), |ns| format!("{:.1}", ns as f64 / 1000.0));
    for r in rows {
        let (m, u) = (r.multicast.as_ref(), r.unicast.as_ref());
        writeln!(
            w,
            "{:<pw$}  {:<nw$}  {:>8}  {:>5}  {:>5}  {:>5}  {:>9}  {:>9}  {:>8}  {:>9}  {}",
            r.host,
            r.name,
            m.map_or("-".to_string(), |f| format!("{:.2}", f.loss_pct())),
            opt(m.map(|f| f.forward_lost)),
            opt(m.map(|f| f.return_lost)),
            opt(m.map(|f| f.unknown_lost)),
            us(m.and_then(|f| f.rtt_p50_ns)),
            us(m.and_then(|f| f.rtt_p99_ns)),
            u.map_or("-".to_string(), |f| format!("{:.2}", f.loss_pct())),
            us(u.and_then(|f| f.rtt_p50_ns)),
            r.verdict.as_str()
        )?;
    }
    for s in super::words::all(f) {
        writeln!(w, "{}", s.text)?;
    }
    Ok(())
}
