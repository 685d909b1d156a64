//! The value parsers of the flags: each error names the value and says what would be accepted.

use std::net::IpAddr;
use std::time::Duration;

/// Parses a duration: `250us`, `10ms`, `2s`, `1m30s`; a bare number is seconds (`0.5`, `3`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(format!("'{s}' is not a duration between 0 and 10^9 seconds"));
        }
        Duration::from_secs_f64(secs)
    } else {
        humantime::parse_duration(s).map_err(|e| format!("'{s}' is not a duration ({e}); try 10ms, 2s or 10m"))?
    };
    if d.is_zero() {
        return Err("the duration must be greater than 0".into());
    }
    Ok(d)
}

/// Parses `10.0.0.0/8` or a single address (`172.16.0.7`, taken as /32).
pub fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("'{s}' is not a network (10.0.0.0/8) or an address"))
}

/// Parses a rate in probes per second, from 0.001 (one every 1000 s) to 1 million.
/// A probe rate: `1000`, `1k`, `2.5k`, `1M`, optionally ending in `pps` or `/s` (as watch's
/// `--min-rate 900pps` writes packets/s); k and M are powers of 1000, as rates are.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let t = t.strip_suffix("pps").or_else(|| t.strip_suffix("/s")).unwrap_or(t);
    let (num, mult) = match t.strip_suffix('k') {
        Some(n) => (n, 1e3),
        None => t.strip_suffix('M').map_or((t, 1.0), |n| (n, 1e6)),
    };
    match num.parse::<f64>().map(|r| r * mult) {
        Ok(r) if r.is_finite() && (0.001..=1e6).contains(&r) => Ok(r),
        _ => Err(format!("'{s}' is not a rate between 0.001 and 1000000 probes/s (1000, 2.5k, 1M, 900pps)")),
    }
}

/// Parses `--report-interval`: at least 10 ms, so a long run cannot ask for millions of rows.
pub fn parse_report_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(10) {
        return Err(format!("'{s}' is shorter than the shortest report interval, 10ms"));
    }
    Ok(d)
}

/// Parses a percentage between 0 and 100.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    match s.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("'{s}' is not a percentage between 0 and 100")),
    }
}

/// Parses a byte count: `65536`, `512k`, `4M` (powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1usize << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        _ => (t, 1),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| (1024..=1 << 30).contains(&n))
        .ok_or_else(|| format!("'{s}' is not a size between 1k and 1024M bytes"))
}

/// Parses `--ramp STEP/PERIOD`: `8/2s` joins 8 groups at once and 8 more every 2 seconds (a
/// bare period is seconds).
pub fn parse_ramp(s: &str) -> Result<(u32, Duration), String> {
    let (step, period) = s
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("'{s}': expected STEP/PERIOD, e.g. 8/2s (8 groups every 2 s)"))?;
    let step = match step.trim().parse::<u32>() {
        Ok(n) if (1..=4096).contains(&n) => n,
        _ => return Err(format!("'{s}': the step '{step}' is not a number of groups from 1 to 4096")),
    };
    Ok((step, parse_duration(period).map_err(|e| format!("'{s}': {e}"))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_bare_seconds() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("fast").unwrap_err().contains("'fast'"));
    }

    #[test]
    fn sizes_rates_and_percentages() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert!(parse_size("12").is_err());
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_rate("1000"), Ok(1000.0));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("NaN").is_err());
        assert!(parse_rate("1e-20").is_err());
        assert_eq!(parse_rate("0.001"), Ok(0.001));
        assert_eq!(parse_rate("2.5k"), Ok(2500.0));
        assert_eq!(parse_rate("1M"), Ok(1e6));
        assert_eq!(parse_rate("900pps"), Ok(900.0));
        assert_eq!(parse_rate("20k/s"), Ok(20_000.0));
        assert!(parse_rate("2M").is_err());
        assert!(parse_rate("1kk").is_err());
        assert!(parse_rate("-5").unwrap_err().starts_with("'-5' is not a rate"));
        assert!(parse_report_interval("1ns").is_err());
        assert_eq!(parse_report_interval("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_percent("0.5%"), Ok(0.5));
        assert!(parse_percent("101").is_err());
    }

    #[test]
    fn ramps() {
        assert_eq!(parse_ramp("8/2s"), Ok((8, Duration::from_secs(2))));
        assert_eq!(parse_ramp(" 1 / 500ms "), Ok((1, Duration::from_millis(500))));
        assert!(parse_ramp("8").unwrap_err().contains("STEP/PERIOD"));
        assert!(parse_ramp("0/1s").unwrap_err().contains("the step '0'"));
        assert!(parse_ramp("4/0").unwrap_err().contains("'4/0'"));
    }
}
