//! `doctor`'s report: findings with their fixes first, then what passed, then what it could not
//! tell; or the same as JSON. Renders only; [`crate::doctor::checks`] decides.

use std::io::{self, Write};

use serde::Serialize;

use crate::doctor::{Report, Role, Setup};

#[derive(Serialize)]
struct JsonReport<'a> {
    iface: &'a str,
    group: String,
    port: u16,
    role: &'static str,
    #[serde(flatten)]
    report: &'a Report,
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Prober => "prober",
        Role::Responder => "responder",
        Role::Both => "both",
    }
}

/// The report in words: findings with their fixes first, then what passed, then what the
/// doctor could not tell.
pub(crate) fn write_text(w: &mut impl Write, s: &Setup, r: &Report) -> std::io::Result<()> {
    let role = match s.role {
        Role::Both => "prober and responder".to_string(),
        other => role_name(other).to_string(),
    };
    writeln!(w, "mcprobe doctor: {} for group {} port {}, as {role}", s.iface, s.group, s.port)?;
    for f in &r.findings {
        writeln!(w, "FOUND {:<11} {}", f.check.as_str(), f.what)?;
        for fix in &f.fix {
            writeln!(w, "      {:<11}   fix: {fix}", "")?;
        }
    }
    for l in &r.ok {
        writeln!(w, "ok    {:<11} {}", l.check.as_str(), l.what)?;
    }
    for l in &r.cannot_tell {
        writeln!(w, "?     {:<11} cannot tell {}", l.check.as_str(), l.what)?;
    }
    let n = r.findings.len();
    match n {
        0 => writeln!(w, "nothing found that breaks multicast on {}", s.iface),
        _ => writeln!(w, "{n} finding{}", if n == 1 { "" } else { "s" }),
    }
}

/// The report as JSON.
pub(crate) fn write_json(w: &mut impl Write, s: &Setup, r: &Report) -> io::Result<()> {
    let j =
        JsonReport { iface: &s.iface, group: s.group.to_string(), port: s.port, role: role_name(s.role), report: r };
    serde_json::to_writer_pretty(&mut *w, &j)?;
    writeln!(w)
}
