//! The querier watch as the commands use it: started with live lines on stderr
//! ([`crate::querier::watch::start`]), and `respond`'s closing lines.

use crate::findings::QuerierFinding;
use crate::output::querier::{seen_line, silence_line};
pub(crate) use crate::querier::watch::start;
use crate::querier::watch::QuerierWatch;

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
