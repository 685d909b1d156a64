//! `mcprobe watch` against real streams in the namespace lab (scripts/lab.sh): ffmpeg sends an
//! MPEG-TS stream over UDP and the same over RTP from h1, an nftables rule on the bridge drops
//! every 40th datagram of each, and h2 watches. Ground truth: the nft counters, and the TS
//! packets of the dropped datagrams, found by comparing tcpdump's captures on the sender and on
//! the receiver. The receiver's capture then goes through `watch --pcap`. Also IPv6 groups from
//! a prefix, and SSM. Needs root, ffmpeg and tcpdump; skips with a printed reason otherwise.

use crate::common;

use std::collections::HashMap;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{fresh_lab, in_lab_host, in_netns, nft_in};
use common::*;
use serde_json::Value;

fn have(tool: &str) -> bool {
    let ok =
        Command::new(tool).arg("-version").output().is_ok() || Command::new(tool).arg("--version").output().is_ok();
    ok || skip_or_fail(&format!("{tool} is not installed (Debian package {tool}; sudo scripts/test.sh installs it)"))
}

/// `tcpdump` on `ns`'s veth0 into `file`, returned once it listens. In immediate mode: without
/// it, libpcap hands over packets a ring block at a time, and those of the last, unfinished
/// block are lost when tcpdump is stopped.
fn tcpdump(ns: &str, file: &Path, filter: &str) -> Child {
    let mut c = Command::new("ip")
        .args(["netns", "exec", ns, "tcpdump", "-i", "veth0", "--immediate-mode", "-U", "-w"])
        .arg(file)
        .arg(filter)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump starts");
    let err = c.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(err).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(first.contains("listening on"), "tcpdump: {first}");
    std::thread::spawn(move || lines.for_each(drop));
    c
}

fn stop(mut c: Child) {
    signal(&c, nix::sys::signal::Signal::SIGINT);
    let _ = c.wait();
}

/// UDP payloads to `port` in a classic pcap (tcpdump -w) of Ethernet frames, in order.
fn payloads(file: &Path, port: u16) -> Vec<Vec<u8>> {
    let b = std::fs::read(file).unwrap();
    assert_eq!(&b[..4], &0xa1b2_c3d4u32.to_le_bytes(), "a little-endian µs pcap");
    let (mut off, mut out) = (24, Vec::new());
    while off + 16 <= b.len() {
        let cl = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        let f = &b[off + 16..off + 16 + cl];
        off += 16 + cl;
        let ip = &f[14..];
        let u = &ip[(ip[0] & 15) as usize * 4..];
        if u16::from_be_bytes([u[2], u[3]]) == port {
            out.push(u[8..].to_vec());
        }
    }
    out
}

/// What the dropped datagrams carried, from the captures before and after the drop: datagrams
/// dropped, TS packets with payload in them, and the continuity errors they cause (per PID, a
/// received packet right after one or more dropped ones).
fn truth(sent: &[Vec<u8>], got: &[Vec<u8>], ts_offset: usize) -> (u64, u64, u64) {
    let mut j = 0;
    let mut dropped = vec![false; sent.len()];
    for (i, p) in sent.iter().enumerate() {
        if j < got.len() && got[j] == *p {
            j += 1;
        } else {
            dropped[i] = true;
        }
    }
    assert_eq!(j, got.len(), "the receiver got datagrams the sender's capture lacks");
    let mut runs: HashMap<u16, u64> = HashMap::new();
    let (mut ts_lost, mut errors) = (0, 0);
    for (p, &d) in sent.iter().zip(&dropped) {
        for q in p[ts_offset..].chunks(188) {
            let pid = u16::from_be_bytes([q[1] & 0x1f, q[2]]);
            if pid == 0x1fff || (q[3] >> 4) & 1 == 0 {
                continue;
            }
            let run = runs.entry(pid).or_default();
            if d {
                ts_lost += 1;
                *run += 1;
            } else {
                if *run > 0 {
                    assert!(*run < 16, "PID {pid} lost {run} packets in a row: beyond what a 4-bit CC tells");
                    errors += 1;
                }
                *run = 0;
            }
        }
    }
    (dropped.iter().filter(|d| **d).count() as u64, ts_lost, errors)
}

fn counter(p: &str, name: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("{p}-br"), "nft", "list", "counter", "netdev", "wloss", name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("packets ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"))
}

fn stream<'a>(report: &'a Value, group: &str) -> &'a Value {
    report["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["group"] == group)
        .unwrap_or_else(|| panic!("no {group}: {report:#}"))
}

#[test]
fn ffmpeg_streams_through_a_dropping_bridge_live_and_from_the_capture() {
    if !have("ffmpeg") || !have("tcpdump") {
        return;
    }
    let Some((l, _turn, p)) = fresh_lab("ww", 2) else { return };
    let _ = &l;
    let (ts_group, rtp_group) = ("239.255.1.1", "239.255.1.2");
    // Every 40th datagram of each stream dropped as it enters the bridge from h1, counted.
    nft_in(
        p,
        "br",
        "table netdev wloss {
  counter d5000 {
  }
  counter d5002 {
  }
  chain in {
    type filter hook ingress device \"p1\" priority 0;
    ip protocol udp udp dport 5000 numgen inc mod 40 == 20 counter name \"d5000\" drop
    ip protocol udp udp dport 5002 numgen inc mod 40 == 20 counter name \"d5002\" drop
  }
}
",
    );
    let dir = tempfile::tempdir().unwrap();
    let (sent_pcap, got_pcap) = (dir.path().join("h1.pcap"), dir.path().join("h2.pcap"));
    let filter = "udp port 5000 or udp port 5002";
    let td1 = tcpdump(&format!("{p}-h1"), &sent_pcap, filter);
    let td2 = tcpdump(&format!("{p}-h2"), &got_pcap, filter);
    let mut w = in_lab_host(p, "h2");
    w.args(["watch", "--iface", "veth0", &format!("{ts_group}:5000"), &format!("{rtp_group}:5002"), "--json"]);
    let mut watch = w.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = stderr_lines(&mut watch);
    assert!(lines.recv_timeout(PATIENCE).unwrap().starts_with("watching "));
    // 6 s of test picture and tone, MPEG-2 video and MPEG audio, to both groups.
    let mut ff = Command::new("ip");
    ff.args(["netns", "exec", &format!("{p}-h1"), "ffmpeg", "-hide_banner", "-loglevel", "error", "-re"]);
    ff.args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=6"]);
    ff.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=6"]);
    for (fmt, url) in [
        ("mpegts", format!("udp://{ts_group}:5000?ttl=1&localaddr=10.77.0.1&pkt_size=1316")),
        ("rtp_mpegts", format!("rtp://{rtp_group}:5002?ttl=1&localaddr=10.77.0.1")),
    ] {
        ff.args(["-map", "0:v", "-map", "1:a", "-c:v", "mpeg2video", "-b:v", "1M", "-c:a", "mp2", "-f", fmt, &url]);
    }
    let mut ff = ff.stdin(Stdio::null()).spawn().expect("ffmpeg starts");
    // Drops only in the first 4 s: every dropped datagram has successors that reveal it.
    std::thread::sleep(Duration::from_secs(4));
    let flushed = Command::new("ip")
        .args(["netns", "exec", &format!("{p}-br"), "nft", "flush", "chain", "netdev", "wloss", "in"])
        .status()
        .unwrap();
    assert!(flushed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = ff.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = ff.kill();
            panic!("ffmpeg did not end");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "ffmpeg: {status}");
    std::thread::sleep(Duration::from_millis(300));
    signal(&watch, nix::sys::signal::Signal::SIGINT);
    let out = watch.wait_with_output().unwrap();
    stop(td1);
    stop(td2);
    let live: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let (c_ts, c_rtp) = (counter(p, "d5000"), counter(p, "d5002"));
    println!("nft dropped {c_ts} (TS/UDP) and {c_rtp} (RTP)");
    assert!(c_ts >= 5 && c_rtp >= 5, "too few drops to test: {c_ts}, {c_rtp}");

    let ts_truth = truth(&payloads(&sent_pcap, 5000), &payloads(&got_pcap, 5000), 0);
    let rtp_truth = truth(&payloads(&sent_pcap, 5002), &payloads(&got_pcap, 5002), 12);
    println!("from the captures: TS/UDP {ts_truth:?}, RTP {rtp_truth:?} (datagrams, TS packets, CC errors)");
    assert_eq!((ts_truth.0, rtp_truth.0), (c_ts, c_rtp), "the captures agree with the counters");

    let offline = run({
        let mut c = bin();
        c.args([
            "watch",
            "--pcap",
            got_pcap.to_str().unwrap(),
            &format!("{ts_group}:5000"),
            &format!("{rtp_group}:5002"),
            "--json",
        ]);
        c
    });
    assert_eq!(offline.status.code(), Some(0), "{}", String::from_utf8_lossy(&offline.stderr));
    let offline: Value = serde_json::from_slice(&offline.stdout).unwrap();
    for (name, report) in [("live", &live), ("pcap", &offline)] {
        let ts = stream(report, ts_group);
        let rtp = stream(report, rtp_group);
        println!("{name}: {ts}\n{name}: {rtp}");
        assert_eq!(ts["format"], "ts");
        assert_eq!(rtp["format"], "rtp+ts");
        assert_eq!(ts["lost"], c_ts, "{name}: TS/UDP lost datagrams = the nft counter");
        assert_eq!(rtp["lost"], c_rtp, "{name}: RTP loss = the nft counter");
        assert_eq!((ts["ts_lost"].as_u64(), ts["cc_errors"].as_u64()), (Some(ts_truth.1), Some(ts_truth.2)), "{name}");
        assert_eq!(
            (rtp["ts_lost"].as_u64(), rtp["cc_errors"].as_u64()),
            (Some(rtp_truth.1), Some(rtp_truth.2)),
            "{name}"
        );
        assert_eq!(rtp["duplicates"], 0);
        assert_eq!(ts["pcr_pids"], "256");
        // About 1 Mbit/s of video plus audio and the TS overhead.
        let mbps = ts["mbps"].as_f64().unwrap();
        assert!((0.5..3.0).contains(&mbps), "{name}: {mbps} Mbit/s");
    }
}

/// IPv6 groups from a prefix (`--groups [ff15::77:0/126]:6000`), each a `--seq` feed with its own
/// gaps, and an IPv4 SSM group that two hosts send to, watched with `--source` h1: h3's
/// datagrams never count.
#[test]
fn ipv6_groups_from_a_prefix_and_ssm() {
    let Some((l, _turn, p)) = fresh_lab("wv", 3) else { return };
    let _ = &l;
    let mut w = in_lab_host(p, "h2");
    w.args(["watch", "--iface", "veth0", "--groups", "[ff15::77:0/126]:6000", "--seq", "u32be@0", "--json"]);
    let mut v6 = w.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let l6 = stderr_lines(&mut v6);
    assert!(l6.recv_timeout(PATIENCE).unwrap().contains("[ff15::77:0]:6000, [ff15::77:1]:6000"));
    let mut w = in_lab_host(p, "h2");
    w.args(["watch", "--iface", "veth0", "232.7.7.7:6001", "--source", "10.77.0.1", "--seq", "u32be@0", "--json"]);
    let mut ssm = w.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let ls = stderr_lines(&mut ssm);
    assert!(ls.recv_timeout(PATIENCE).unwrap().starts_with("watching "));
    // Group k skips k numbers: group 0 none, group 3 three.
    let h1 = format!("{p}-h1");
    in_netns(&h1, || {
        let idx = nix::net::if_::if_nametoindex("veth0").unwrap();
        let s6 = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None).unwrap();
        s6.set_multicast_if_v6(idx).unwrap();
        s6.set_multicast_hops_v6(1).unwrap();
        let s6: UdpSocket = s6.into();
        let s4 = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s4.set_multicast_if_v4(&Ipv4Addr::new(10, 77, 0, 1)).unwrap();
        s4.set_multicast_ttl_v4(1).unwrap();
        let s4: UdpSocket = s4.into();
        for n in 0u32..300 {
            for k in 0..4u32 {
                if (100..100 + k).contains(&n) {
                    continue;
                }
                let g: IpAddr = format!("ff15::77:{k}").parse().unwrap();
                s6.send_to(&n.to_be_bytes(), SocketAddr::new(g, 6000)).unwrap();
            }
            s4.send_to(&n.to_be_bytes(), "232.7.7.7:6001").unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    in_netns(&format!("{p}-h3"), || {
        let s4 = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        s4.set_multicast_if_v4(&Ipv4Addr::new(10, 77, 0, 3)).unwrap();
        s4.set_multicast_ttl_v4(1).unwrap();
        let s4: UdpSocket = s4.into();
        for n in 0u32..50 {
            s4.send_to(&(n * 1000).to_be_bytes(), "232.7.7.7:6001").unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let report = |c: Child| -> Value {
        signal(&c, nix::sys::signal::Signal::SIGINT);
        let out = c.wait_with_output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    };
    let r6 = report(v6);
    let streams = r6["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 4, "{r6:#}");
    for (k, s) in streams.iter().enumerate() {
        println!("{s}");
        assert_eq!(s["group"], format!("ff15::77:{k}"));
        assert_eq!(s["source"], "fd77::1");
        assert_eq!((s["lost"].as_u64(), s["expected"].as_u64()), (Some(k as u64), Some(300)));
        assert_eq!(s["seq_gaps"], if k == 0 { 0 } else { 1 });
    }
    let r4 = report(ssm);
    let streams = r4["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "only h1's datagrams: {r4:#}");
    assert_eq!((streams[0]["source"].as_str(), streams[0]["packets"].as_u64()), (Some("10.77.0.1"), Some(300)));
    assert_eq!(streams[0]["lost"], 0);
}
