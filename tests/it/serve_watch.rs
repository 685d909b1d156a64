//! `mcprobe serve` with `[[watch]]` entries, on loopback: a `--seq` feed and an RTP stream with
//! known gaps, reorders and a duplicate, scraped from /metrics with every counter exact; the
//! groups' silence after the senders stop, and the streams' series aging out after --forget;
//! promtool on the exposition; a real Prometheus scraping it with the shipped watch alert rules
//! (McprobeStreamLoss while the feed loses, McprobeStreamStopped once it stops) and every query
//! of the watch dashboard. Only 127.0.0.1 and groups joined on it, TTL 1.

use crate::common;
use crate::serve_prometheus::{
    dashboard_queries, have, http_get, promtool_check_metrics, query, scalar, start_prometheus,
};

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{bin, free_port, free_tcp_port, loopback_multicast_sender, Killed, PATIENCE};

const SEQ_GROUP: &str = "239.255.43.1";
const RTP_GROUP: &str = "239.255.43.2";

/// `serve --config` with `config`, listening on 127.0.0.1; returns once /metrics shows every
/// watched group (its sockets are joined then).
fn serve(config: &str, groups: usize, extra: &[&str]) -> (Killed, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serve.toml");
    std::fs::write(&path, config).unwrap();
    let http = free_tcp_port();
    let child = bin()
        .args(["serve", "--config", path.to_str().unwrap(), "--listen", &format!("127.0.0.1:{http}")])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    let ok = common::wait_for(PATIENCE, || {
        TcpStream::connect((Ipv4Addr::LOCALHOST, http)).is_ok()
            && metrics(http).matches("mcprobe_watch_group_silence_seconds{").count() == groups
    });
    assert!(ok, "serve did not show its {groups} watched group(s):\n{}", metrics(http));
    (child, http, dir)
}

fn metrics(http: u16) -> String {
    http_get(http, "/metrics", None).1
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A `--seq u32be@0` feed of 0..500: 100..103 and 300 never sent (4 lost, 2 gaps), 200 and 201
/// swapped (1 reordered), 400 sent twice (1 duplicate): 497 datagrams of 48 bytes.
fn seq_feed() -> Vec<Vec<u8>> {
    let mut order: Vec<u32> = (0..500).filter(|n| !(100..103).contains(n) && *n != 300).collect();
    let at = order.iter().position(|&n| n == 200).unwrap();
    order.swap(at, at + 1);
    let dup = order.iter().position(|&n| n == 400).unwrap();
    order.insert(dup, 400);
    order
        .into_iter()
        .map(|n| {
            let mut d = n.to_be_bytes().to_vec();
            d.extend([0x5a; 44]);
            d
        })
        .collect()
}

/// RTP (version 2, payload type 96, SSRC 0x4d435052), sequence numbers from 65400 across the
/// wrap: 300 numbers with 3 never sent (i = 50, 150, 151), 172-byte datagrams.
fn rtp_stream() -> Vec<Vec<u8>> {
    (0u32..300)
        .filter(|i| ![50, 150, 151].contains(i))
        .map(|i| {
            let seq = ((65_400 + i) % 65_536) as u16;
            let mut d = vec![0x80, 96];
            d.extend(seq.to_be_bytes());
            d.extend((i * 3000).to_be_bytes());
            d.extend(0x4d43_5052u32.to_be_bytes());
            d.extend([0x11; 160]);
            d
        })
        .collect()
}

fn send(datagrams: &[Vec<u8>], to: SocketAddr) {
    let s = loopback_multicast_sender();
    for d in datagrams {
        s.send_to(d, to).unwrap();
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// The figures of a stream and its group, exact; the group silent after the senders stopped,
/// then its stream forgotten (--forget 5s) while the group's silence stays.
#[test]
fn serve_watches_a_seq_feed_and_an_rtp_stream_with_exact_counts_and_forgets_them() {
    let (sp, rp) = (free_port(), free_port());
    let config = format!(
        "[[watch]]\nname = \"md\"\niface = \"127.0.0.1\"\ngroups = [\"{SEQ_GROUP}:{sp}\"]\nformat = \"seq u32be@0\"\n\n\
         [[watch]]\nname = \"tv\"\niface = \"127.0.0.1\"\ngroups = \"{RTP_GROUP}:{rp}\"\n"
    );
    let (_serve, http, _dir) = serve(&config, 2, &["--forget", "5s"]);
    let (seq, rtp) = (seq_feed(), rtp_stream());
    let seq_to: SocketAddr = format!("{SEQ_GROUP}:{sp}").parse().unwrap();
    let rtp_to: SocketAddr = format!("{RTP_GROUP}:{rp}").parse().unwrap();
    let t = std::thread::spawn(move || send(&rtp, rtp_to));
    send(&seq, seq_to);
    t.join().unwrap();
    let md = format!("{{target=\"md\",group=\"{SEQ_GROUP}\",port=\"{sp}\",source=\"127.0.0.1\"}}");
    let tv = format!("{{target=\"tv\",group=\"{RTP_GROUP}\",port=\"{rp}\",source=\"127.0.0.1\"}}");
    // Published once a second: wait for the last datagrams to be in.
    let done = common::wait_for(PATIENCE, || {
        let m = metrics(http);
        sample(&m, &format!("mcprobe_watch_packets_total{md}")) == Some(497.0)
            && sample(&m, &format!("mcprobe_watch_packets_total{tv}")) == Some(297.0)
    });
    let text = metrics(http);
    assert!(done, "the counts never reached what was sent:\n{text}");
    println!("{}", text.lines().filter(|l| l.starts_with("mcprobe_watch_")).collect::<Vec<_>>().join("\n"));
    for (series, want) in [
        (format!("mcprobe_watch_packets_total{md}"), 497.0),
        (format!("mcprobe_watch_bytes_total{md}"), 497.0 * 48.0),
        (format!("mcprobe_watch_lost_total{md}"), 4.0),
        (format!("mcprobe_watch_duplicates_total{md}"), 1.0),
        (format!("mcprobe_watch_reordered_total{md}"), 1.0),
        (format!("mcprobe_watch_source_changes_total{md}"), 0.0),
        (format!("mcprobe_watch_packets_total{tv}"), 297.0),
        (format!("mcprobe_watch_bytes_total{tv}"), 297.0 * 172.0),
        (format!("mcprobe_watch_lost_total{tv}"), 3.0),
        (format!("mcprobe_watch_duplicates_total{tv}"), 0.0),
        (format!("mcprobe_watch_reordered_total{tv}"), 0.0),
        (format!("mcprobe_watch_source_changes_total{tv}"), 0.0),
        (format!("mcprobe_watch_local_drops_total{{target=\"md\",group=\"{SEQ_GROUP}\",port=\"{sp}\"}}"), 0.0),
    ] {
        assert_eq!(sample(&text, &series), Some(want), "{series} in\n{text}");
    }
    // The formats' own figures only: no TS figures for either, RTP jitter for the RTP stream.
    assert!(!text.contains("mcprobe_watch_ts_lost_total{"), "{text}");
    assert!(!text.contains(&format!("mcprobe_watch_rtp_jitter_seconds{md}")), "{text}");
    assert!(sample(&text, &format!("mcprobe_watch_rtp_jitter_seconds{tv}")).is_some(), "{text}");
    assert!(!text.contains("source=\"other\""), "one source each, under the cap: {text}");

    // promtool accepts the exposition (CI installs it).
    if have("promtool") {
        promtool_check_metrics(&text);
    } else {
        common::skip_or_fail("promtool check metrics: promtool is not installed (Debian package prometheus; sudo scripts/test.sh installs it)");
    }

    // Stopped: both groups silent for over a second, and the figures unchanged.
    let silence = |m: &str, t: &str, g: &str, p: u16| {
        sample(m, &format!("mcprobe_watch_group_silence_seconds{{target=\"{t}\",group=\"{g}\",port=\"{p}\"}}"))
    };
    let stopped = common::wait_for(PATIENCE, || {
        let m = metrics(http);
        silence(&m, "md", SEQ_GROUP, sp).is_some_and(|s| s > 1.0)
            && silence(&m, "tv", RTP_GROUP, rp).is_some_and(|s| s > 1.0)
    });
    let m = metrics(http);
    assert!(stopped, "the groups' silence did not grow:\n{m}");
    assert_eq!(sample(&m, &format!("mcprobe_watch_lost_total{md}")), Some(4.0));
    // Its last second held no datagram: its longest gap is the silence so far.
    assert!(sample(&m, &format!("mcprobe_watch_max_gap_seconds{md}")).is_some_and(|g| g > 0.5), "{m}");

    // After --forget 5s without a datagram, the streams leave; the groups' silence stays.
    let forgotten = common::wait_for(PATIENCE, || !metrics(http).contains("mcprobe_watch_packets_total{"));
    let m = metrics(http);
    assert!(forgotten, "the silent streams were not forgotten:\n{m}");
    assert!(silence(&m, "md", SEQ_GROUP, sp).is_some_and(|s| s > 5.0), "{m}");
    assert!(silence(&m, "tv", RTP_GROUP, rp).is_some_and(|s| s > 5.0), "{m}");
}

/// More sources than `max_sources` on one group: the first is followed, the rest summed as
/// `source="other"` (packets and bytes only). Two loopback addresses send: 127.0.0.1 first.
#[test]
fn sources_beyond_the_cap_are_summed_as_other() {
    let port = free_port();
    let config = format!(
        "[[watch]]\nname = \"md\"\niface = \"127.0.0.1\"\ngroups = [\"{SEQ_GROUP}:{port}\"]\nformat = \"seq u32be@0\"\nmax_sources = 1\n"
    );
    let (_serve, http, _dir) = serve(&config, 1, &[]);
    let to: SocketAddr = format!("{SEQ_GROUP}:{port}").parse().unwrap();
    let first = loopback_multicast_sender();
    let second = {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
        s.set_multicast_ttl_v4(1).unwrap();
        s.bind(&std::net::SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 0).into()).unwrap();
        std::net::UdpSocket::from(s)
    };
    first.send_to(&0u32.to_be_bytes(), to).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    for n in 1..=10u32 {
        first.send_to(&n.to_be_bytes(), to).unwrap();
        second.send_to(&[0u8; 10], to).unwrap();
    }
    let labels = |src: &str| format!("{{target=\"md\",group=\"{SEQ_GROUP}\",port=\"{port}\",source=\"{src}\"}}");
    let ok = common::wait_for(PATIENCE, || {
        let m = metrics(http);
        sample(&m, &format!("mcprobe_watch_packets_total{}", labels("127.0.0.1"))) == Some(11.0)
            && sample(&m, &format!("mcprobe_watch_packets_total{}", labels("other"))) == Some(10.0)
    });
    let m = metrics(http);
    assert!(ok, "{m}");
    assert_eq!(sample(&m, &format!("mcprobe_watch_bytes_total{}", labels("other"))), Some(100.0));
    assert!(!m.contains(&format!("mcprobe_watch_lost_total{}", labels("other"))), "{m}");
    assert!(!m.contains("source=\"127.0.0.2\""), "{m}");
}

/// Config mistakes of a `[[watch]]` entry: exit 2, the file, the entry, the field and the value.
#[test]
fn a_bad_watch_entry_is_exit_2_naming_the_entry_the_field_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serve.toml");
    for (text, extra, want) in [
        (
            "[[watch]]\nname = \"tv\"\niface = \"127.0.0.1\"\ngroups = [\"239.1.1.1:5000\"]\nformat = \"mpeg\"\n",
            &[][..],
            "watch 'tv': field 'format': 'mpeg' is not a format",
        ),
        (
            "[[watch]]\nname = \"tv\"\niface = \"127.0.0.1\"\ngroups = [\"239.1.1.0/28:5000\"]\n",
            &["--max-series", "10"][..],
            "watch 'tv': field 'groups': 16 groups, more than --max-series 10",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let out = bin()
            .args(["serve", "--config", path.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("--config {}", path.display())) && err.contains(want), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// A real Prometheus scrapes serve's watch entry with the shipped watch rules, their windows
/// shortened: the feed's loss fires McprobeStreamLoss, its end McprobeStreamStopped; the scraped
/// counters are exact and every dashboard query runs.
#[test]
fn prometheus_scrapes_a_watch_entry_and_the_watch_alerts_fire() {
    if !have("prometheus") {
        common::skip_or_fail(
            "prometheus is not installed (Debian package prometheus; sudo scripts/test.sh installs it)",
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = free_port();
    let config = format!(
        "[[watch]]\nname = \"md\"\niface = \"127.0.0.1\"\ngroups = [\"{SEQ_GROUP}:{port}\"]\nformat = \"seq u32be@0\"\n"
    );
    let (_serve, http, dir) = serve(&config, 1, &["--forget", "10m"]);
    let rules = std::fs::read_to_string(root.join("contrib/prometheus/mcprobe-watch-rules.yml")).unwrap();
    for shape in ["silence_seconds > 5", "for: 30s", "[5m]", "for: 5m"] {
        assert!(rules.contains(shape), "the watch rules changed shape: no {shape}");
    }
    let rules = rules
        .replace("silence_seconds > 5", "silence_seconds > 1")
        .replace("for: 30s", "for: 1s")
        .replace("[5m]", "[20s]")
        .replace("for: 5m", "for: 1s");
    let (_prom, prom_port) = start_prometheus(dir.path(), &rules, http);
    let wait = Duration::from_secs(45);
    let ready = common::wait_for(wait, || {
        TcpStream::connect((Ipv4Addr::LOCALHOST, prom_port)).is_ok() && http_get(prom_port, "/-/ready", None).0 == 200
    });
    assert!(ready, "Prometheus did not get ready");
    assert!(
        common::wait_for(wait, || scalar(prom_port, "up{job=\"mcprobe\"}") == Some(1.0)),
        "Prometheus never scraped serve"
    );

    // 6 s of a feed at 200 datagrams/s, every 100th number missing: 1 % loss.
    let to: SocketAddr = format!("{SEQ_GROUP}:{port}").parse().unwrap();
    let s = loopback_multicast_sender();
    let start = Instant::now();
    let (mut sent, mut lost) = (0u64, 0u64);
    for n in 0u32..1200 {
        let due = start + Duration::from_millis(5 * u64::from(n));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        if n % 100 == 50 {
            lost += 1;
            continue;
        }
        s.send_to(&n.to_be_bytes(), to).unwrap();
        sent += 1;
    }
    let series = format!("{{target=\"md\",group=\"{SEQ_GROUP}\",port=\"{port}\",source=\"127.0.0.1\"}}");
    assert!(
        common::wait_for(wait, || scalar(prom_port, &format!("mcprobe_watch_packets_total{series}"))
            == Some(sent as f64)),
        "Prometheus never saw {sent} datagrams: {:?}",
        scalar(prom_port, &format!("mcprobe_watch_packets_total{series}"))
    );
    assert_eq!(scalar(prom_port, &format!("mcprobe_watch_lost_total{series}")), Some(lost as f64));
    let alert = |name: &str| {
        query(prom_port, &format!("ALERTS{{alertname=\"{name}\",group=\"{SEQ_GROUP}\",port=\"{port}\"}}"))
            .iter()
            .any(|r| matches!(r["metric"]["alertstate"].as_str(), Some("pending" | "firing")))
    };
    assert!(common::wait_for(wait, || alert("McprobeStreamLoss")), "McprobeStreamLoss never fired on 1 % loss");
    assert!(common::wait_for(wait, || alert("McprobeStreamStopped")), "McprobeStreamStopped never fired");
    let queries = dashboard_queries(&root.join("contrib/grafana/mcprobe-watch.json"));
    assert!(queries.len() >= 6);
    for q in &queries {
        let q = q.replace("$group", ".*");
        let rows = query(prom_port, &q);
        if !q.contains("ts_lost") && !q.contains("cc_errors") && !q.contains("mdi_df") && !q.contains("rtp_jitter") {
            assert!(!rows.is_empty(), "{q} gave nothing");
        }
    }
    assert!(!query(prom_port, "group by (target) (mcprobe_watch_group_silence_seconds)").is_empty());
}
