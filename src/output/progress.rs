//! Live progress on stderr (indicatif), shown only when stderr is a terminal and not `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::run::Progress;

/// Draws [`Progress`] snapshots; a no-op when hidden.
pub(crate) struct LiveProgress {
    bar: Option<ProgressBar>,
    last: Option<(Instant, u64)>,
    ack_rate: f64,
}

impl LiveProgress {
    pub(crate) fn new(total: u64, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(5));
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:24}] {pos}/{len} probes (eta {eta}) · {msg}")
                    .expect("the template is valid")
                    .progress_chars("=> "),
            );
            bar
        });
        LiveProgress { bar, last: None, ack_rate: 0.0 }
    }

    pub(crate) fn update(&mut self, p: &Progress) {
        let Some(bar) = &self.bar else { return };
        let now = Instant::now();
        if let Some((t, acks)) = self.last {
            let dt = now.duration_since(t).as_secs_f64();
            if dt > 0.0 {
                self.ack_rate = p.acks.saturating_sub(acks) as f64 / dt;
            }
        }
        self.last = Some((now, p.acks));
        bar.set_position(p.sent);
        let loss = p.worst_loss_pct.map_or("-".to_string(), |l| format!("{l:.1}%"));
        let state = if p.draining { " · waiting for late acks" } else { "" };
        bar.set_message(format!(
            "{} responder{} · {:.0} acks/s · worst loss {loss}{state}",
            p.responders,
            if p.responders == 1 { "" } else { "s" },
            self.ack_rate
        ));
    }

    /// True when the bar is drawn (stderr is a terminal and not quiet).
    pub(crate) fn is_shown(&self) -> bool {
        self.bar.is_some()
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `Duration` as a person writes it: 100ms, 2s, 1m30s.
pub(crate) fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_micros(d.as_micros() as u64)).to_string().replace(' ', "")
}
