//! The querier watch as the commands use it: started with live lines on stderr (a querier first
//! heard, queries stopped), and `respond`'s closing lines. Kept out of [`crate::app`] so the
//! commands only call it.

use std::net::IpAddr;
use std::time::Duration;

use crate::findings::QuerierFinding;
use crate::net::Iface;
use crate::output::querier::{seen_line, silence_line};
use crate::querier::watch::{worth_watching, EventSink, QuerierEvent, QuerierWatch};

/// Starts watching for membership queries of `group`'s family on `iface`, with a live line when
/// a querier is first heard (unless `quiet`) and when queries stop. Without CAP_NET_RAW, says so
/// in one line and carries on (`Some(Err(why))`). `None` on loopback, where no query ever comes.
/// `target` names `serve`'s target in the lines (several may watch one interface); "" for none.
pub(crate) fn start(
    iface: &Option<Iface>,
    group: IpAddr,
    wait: Option<Duration>,
    quiet: bool,
    target: &str,
) -> Option<Result<QuerierWatch, String>> {
    if !worth_watching(iface.as_ref()) {
        return None;
    }
    let who = if target.is_empty() { String::new() } else { format!("target {target}: ") };
    let see = if target.is_empty() { "see the report" } else { "mcprobe_querier_silent is 1" };
    let events: EventSink = Box::new({
        let who = who.clone();
        move |ev| match ev {
            QuerierEvent::Heard(q) if !quiet => {
                let default = if q.announced { "" } else { " (default)" };
                let (v, secs) = (q.version.as_str(), q.interval.as_secs());
                eprintln!("{who}querier {} heard: {v}, interval {secs} s{default}", q.address)
            }
            QuerierEvent::Heard(_) => {}
            QuerierEvent::Silent(s) => {
                let secs = s.silent_for.as_secs_f64();
                eprintln!(
                    "mcprobe: {who}no IGMP/MLD membership query for {secs:.1} s: snooping switches will stop forwarding the group ({see})"
                )
            }
        }
    });
    let watch = QuerierWatch::start(iface.as_ref(), group.is_ipv6(), wait, Some(events)).map_err(|u| u.0);
    if let Err(why) = &watch {
        eprintln!("mcprobe: {who}{why}");
    }
    Some(watch)
}

/// Stops a watch; the lines `respond` prints when it stops: each querier heard, a silence.
pub(crate) fn closing_lines(watch: QuerierWatch) -> Vec<String> {
    let QuerierFinding::Watched { queriers, silence } = QuerierFinding::of(&watch.finish(), &[]) else {
        return Vec::new();
    };
    let mut lines: Vec<String> = queriers.iter().map(seen_line).chain(silence.as_deref().map(silence_line)).collect();
    if lines.is_empty() {
        lines.push("no membership querier heard".to_string());
    }
    lines
}
