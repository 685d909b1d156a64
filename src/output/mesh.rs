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
    use super::table::Align::{Left, Right};
    let mut t = super::table::Table::new(&[
        ("PEER", Left),
        ("NAME", Left),
        ("MC LOSS%", Right),
        ("FWD", Right),
        ("RET", Right),
        ("UNK", Right),
        ("MC P50 µs", Right),
        ("MC P99 µs", Right),
        ("UC LOSS%", Right),
        ("UC P50 µs", Right),
        ("VERDICT", Left),
    ]);
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let us = |v: Option<u64>| v.map_or("-".to_string(), |ns| format!("{:.1}", ns as f64 / 1000.0));
    let pct = |p: Option<&crate::mesh::PathFigures>| p.map_or("-".to_string(), |f| format!("{:.2}", f.loss_pct()));
    for r in rows {
        let (m, u) = (r.multicast.as_ref(), r.unicast.as_ref());
        t.row(vec![
            r.host.to_string(),
            r.name.clone(),
            pct(m),
            opt(m.map(|f| f.loss.forward)),
            opt(m.map(|f| f.loss.ret)),
            opt(m.map(|f| f.loss.unknown)),
            us(m.and_then(|f| f.rtt_p50_ns)),
            us(m.and_then(|f| f.rtt_p99_ns)),
            pct(u),
            us(u.and_then(|f| f.rtt_p50_ns)),
            r.verdict.as_str().to_string(),
        ]);
    }
    t.write(w)?;
    for s in super::words::all(f) {
        writeln!(w, "{}", s.text)?;
    }
    Ok(())
}
