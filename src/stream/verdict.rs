//! The watch's thresholds (`--max-loss`, `--min-rate`, `--max-gap`) against its figures: which
//! stream missed which, typed. Pure.

use std::fmt;

use serde::Serialize;

use super::engine::StreamSummary;

/// `--min-rate`: in bits or in packets per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "unit", content = "value", rename_all = "snake_case")]
pub enum MinRate {
    BitsPerSecond(f64),
    PacketsPerSecond(f64),
}

impl MinRate {
    /// `4M`, `4Mbit`, `500k`, `2.5G`, `1000pps`, a bare number: bits per second.
    pub fn parse(s: &str) -> Result<MinRate, String> {
        let t = s.trim();
        let bad = || format!("'{s}' is not a rate: write 4M (bits/s), 500kbit, 1000pps");
        if let Some(n) = t.strip_suffix("pps") {
            return match n.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(MinRate::PacketsPerSecond(v)),
                _ => Err(bad()),
            };
        }
        let t = t.trim_end_matches("bps").trim_end_matches("bit").trim_end_matches("b");
        let (num, mult) = match t.char_indices().last() {
            Some((i, 'k' | 'K')) => (&t[..i], 1e3),
            Some((i, 'm' | 'M')) => (&t[..i], 1e6),
            Some((i, 'g' | 'G')) => (&t[..i], 1e9),
            _ => (t, 1.0),
        };
        match num.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(MinRate::BitsPerSecond(v * mult)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for MinRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MinRate::BitsPerSecond(b) => write!(f, "{:.3} Mbit/s", b / 1e6),
            MinRate::PacketsPerSecond(p) => write!(f, "{p} packets/s"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Thresholds {
    pub max_loss_pct: Option<f64>,
    pub min_rate: Option<MinRate>,
    pub max_gap_s: Option<f64>,
}

/// What a stream missed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Miss {
    Loss {
        pct: f64,
        limit: f64,
    },
    /// `None`: nothing arrived (or a single packet: no rate).
    Rate {
        rate: Option<f64>,
        limit: MinRate,
    },
    Gap {
        seconds: f64,
        limit: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub stream: String,
    #[serde(flatten)]
    pub miss: Miss,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.miss {
            Miss::Loss { pct, limit } => write!(f, "{}: lost {pct:.3}%, more than --max-loss {limit}%", self.stream),
            Miss::Rate { rate: None, limit } => {
                write!(f, "{}: no rate (nothing received), --min-rate {limit}", self.stream)
            }
            Miss::Rate { rate: Some(r), limit } => {
                let got = match limit {
                    MinRate::BitsPerSecond(_) => format!("{:.3} Mbit/s", r / 1e6),
                    MinRate::PacketsPerSecond(_) => format!("{r:.1} packets/s"),
                };
                write!(f, "{}: {got}, below --min-rate {limit}", self.stream)
            }
            Miss::Gap { seconds, limit } => {
                write!(
                    f,
                    "{}: a gap of {:.1} ms, longer than --max-gap {:.1} ms",
                    self.stream,
                    seconds * 1e3,
                    limit * 1e3
                )
            }
        }
    }
}

/// Every threshold every stream missed. The silence at the end counts as a gap, and a watched
/// group that received nothing misses `--min-rate` and `--max-gap`.
pub fn check(streams: &[StreamSummary], t: &Thresholds) -> Vec<Failure> {
    let mut out = Vec::new();
    for s in streams {
        let mut miss = |m| out.push(Failure { stream: s.label(), miss: m });
        if let (Some(limit), Some(pct)) = (t.max_loss_pct, s.loss_pct) {
            if pct > limit {
                miss(Miss::Loss { pct, limit });
            }
        }
        if let Some(limit) = t.min_rate {
            let rate = match limit {
                MinRate::BitsPerSecond(_) => s.mbps.map(|m| m * 1e6),
                MinRate::PacketsPerSecond(_) => s.pps,
            };
            let want = match limit {
                MinRate::BitsPerSecond(b) | MinRate::PacketsPerSecond(b) => b,
            };
            if rate.is_none_or(|r| r < want) {
                miss(Miss::Rate { rate, limit });
            }
        }
        if let Some(limit) = t.max_gap_s {
            let gap = (s.max_gap_ms.unwrap_or(0.0) / 1e3).max(s.silence_s);
            if gap > limit {
                miss(Miss::Gap { seconds: gap, limit });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_bits_or_packets() {
        assert_eq!(MinRate::parse("4M"), Ok(MinRate::BitsPerSecond(4e6)));
        assert_eq!(MinRate::parse("500kbit"), Ok(MinRate::BitsPerSecond(5e5)));
        assert_eq!(MinRate::parse("2.5Gbps"), Ok(MinRate::BitsPerSecond(2.5e9)));
        assert_eq!(MinRate::parse("1000"), Ok(MinRate::BitsPerSecond(1000.0)));
        assert_eq!(MinRate::parse("900pps"), Ok(MinRate::PacketsPerSecond(900.0)));
        assert!(MinRate::parse("fast").unwrap_err().contains("'fast'"));
        assert!(MinRate::parse("0").is_err());
        assert!(MinRate::parse("-3pps").is_err());
    }

    #[test]
    fn each_threshold_names_the_stream_and_the_figure() {
        let s = StreamSummary {
            group: "239.1.1.1".into(),
            port: 5000,
            source: Some("10.77.0.1".into()),
            loss_pct: Some(2.0),
            pps: Some(100.0),
            mbps: Some(1.0),
            max_gap_ms: Some(250.0),
            silence_s: 0.01,
            ..StreamSummary::default()
        };
        let silent =
            StreamSummary { group: "239.1.1.2".into(), port: 5000, silence_s: 10.0, ..StreamSummary::default() };
        let t =
            Thresholds { max_loss_pct: Some(1.0), min_rate: Some(MinRate::BitsPerSecond(2e6)), max_gap_s: Some(0.2) };
        let f: Vec<String> = check(&[s.clone(), silent], &t).iter().map(|f| f.to_string()).collect();
        assert_eq!(
            f,
            [
                "239.1.1.1:5000 from 10.77.0.1: lost 2.000%, more than --max-loss 1%",
                "239.1.1.1:5000 from 10.77.0.1: 1.000 Mbit/s, below --min-rate 2.000 Mbit/s",
                "239.1.1.1:5000 from 10.77.0.1: a gap of 250.0 ms, longer than --max-gap 200.0 ms",
                "239.1.1.2:5000: no rate (nothing received), --min-rate 2.000 Mbit/s",
                "239.1.1.2:5000: a gap of 10000.0 ms, longer than --max-gap 200.0 ms",
            ]
        );
        let ok = Thresholds {
            max_loss_pct: Some(5.0),
            min_rate: Some(MinRate::PacketsPerSecond(50.0)),
            max_gap_s: Some(1.0),
        };
        assert!(check(&[s], &ok).is_empty());
    }
}
