//! The `doctor` command: flags to a [`Setup`], the facts, the checks, and the report as text or
//! JSON. Exit code 0 when nothing was found, 1 with findings, 2 for usage errors.

use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{checks, gather, Report, Role, Setup};
use crate::cli::doctor::{DoctorArgs, RoleArg};
use crate::net;

/// Something was found.
pub const EXIT_FINDINGS: i32 = 1;

fn setup(args: &DoctorArgs) -> Result<(Setup, u32)> {
    let group = net::check_group(args.group)?;
    let iface = net::resolve_iface(&args.iface)?;
    iface.check_family(group)?;
    if let Some(p) = args.peer.iter().find(|p| p.is_ipv6() != group.is_ipv6() || p.is_multicast()) {
        anyhow::bail!("--peer {p}: not a host address of --group {group}'s family");
    }
    let role = match args.role {
        RoleArg::Prober => Role::Prober,
        RoleArg::Responder => Role::Responder,
        RoleArg::Both => Role::Both,
    };
    let s = Setup {
        iface: iface.name.clone(),
        group,
        port: args.port,
        role,
        ack_port: args.ack_port,
        peers: args.peer.clone(),
        querier_wait: args.querier_wait,
        keyed: args.keyed,
    };
    Ok((s, iface.index))
}

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
pub fn write_text(w: &mut impl Write, s: &Setup, r: &Report) -> std::io::Result<()> {
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

/// `mcprobe doctor`.
pub fn doctor(args: &DoctorArgs) -> Result<i32> {
    let (s, index) = setup(args)?;
    let facts = gather::gather(&s, index);
    let report = checks::check(&s, &facts);
    let mut out = std::io::stdout().lock();
    if args.json {
        let j = JsonReport {
            iface: &s.iface,
            group: s.group.to_string(),
            port: s.port,
            role: role_name(s.role),
            report: &report,
        };
        serde_json::to_writer_pretty(&mut out, &j)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &s, &report)?;
    }
    out.flush().context("cannot write to stdout")?;
    Ok(if report.findings.is_empty() { crate::app::EXIT_OK } else { EXIT_FINDINGS })
}
