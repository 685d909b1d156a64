//! One test per rule of how flags combine (trippy's `build_config` tests are the model).

use std::io::Write;

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};

fn probe_args(extra: &[&str]) -> ProbeArgs {
    let mut argv = vec!["mcprobe", "probe", "--iface", "127.0.0.1"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("the arguments parse").command {
        Command::Probe(a) => a,
        _ => unreachable!(),
    }
}

fn probe_err(extra: &[&str]) -> String {
    format!("{:#}", probe(&probe_args(extra)).expect_err("the configuration is refused"))
}

#[test]
fn defaults_are_ten_seconds_at_ten_per_second() {
    let s = probe(&probe_args(&[])).unwrap();
    let c = &s.probe;
    assert_eq!((c.interval, c.count, c.ttl, c.size), (Duration::from_millis(100), 100, 1, 128));
    assert_eq!(c.timeout, Duration::from_secs(1));
    assert!(!c.intervals && !c.raw && c.key.is_none() && c.hosts.is_empty());
    assert_eq!(s.judgement.threshold_pct, DEFAULT_THRESHOLD_PCT);
    assert_eq!(s.judgement.group, "239.255.42.42:24242".parse().unwrap());
    assert_eq!(s.thresholds, Thresholds::default());
}

#[test]
fn rate_and_duration_give_interval_and_count() {
    let c = probe(&probe_args(&["--rate", "1000", "--duration", "2s"])).unwrap().probe;
    assert_eq!((c.interval, c.count), (Duration::from_millis(1), 2000));
    let c = probe(&probe_args(&["--interval", "250ms", "--count", "7"])).unwrap().probe;
    assert_eq!((c.interval, c.count), (Duration::from_millis(250), 7));
}

#[test]
fn the_soak_preset_is_ten_minutes_at_one_per_second_unless_overridden() {
    let c = probe(&probe_args(&["--preset", "soak"])).unwrap().probe;
    assert_eq!((c.interval, c.count), (SOAK_INTERVAL, 600));
    let c = probe(&probe_args(&["--preset", "soak", "--rate", "10"])).unwrap().probe;
    assert_eq!((c.interval, c.count), (Duration::from_millis(100), 6000));
}

#[test]
fn keyed_probes_need_room_for_a_keyed_ack() {
    let e = probe_err(&["--key", "s3cret", "--size", "64"]);
    assert!(e.contains("--size 64") && e.contains("80"), "{e}");
    assert!(probe(&probe_args(&["--key", "s3cret", "--size", "80"])).is_ok());
}

#[test]
fn out_must_not_be_a_file() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().to_str().unwrap();
    let e = probe_err(&["--out", path]);
    assert!(e.contains(&format!("--out {path}: is a file, not a folder")), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let s = probe(&probe_args(&["--out", dir.path().to_str().unwrap()])).unwrap();
    assert!(s.probe.intervals, "--out keeps per-interval figures for intervals.csv");
}

#[test]
fn hosts_are_resolved_in_order_without_repeats() {
    let c = probe(&probe_args(&["--hosts", "127.0.0.3,127.0.0.2,127.0.0.3"])).unwrap().probe;
    let want: Vec<IpAddr> = vec!["127.0.0.3".parse().unwrap(), "127.0.0.2".parse().unwrap()];
    assert_eq!(c.hosts, want);
}

#[test]
fn hosts_of_the_wrong_family_or_multicast_are_refused() {
    let e = probe_err(&["--hosts", "239.1.1.1"]);
    assert!(e.contains("--hosts 239.1.1.1") && e.contains("not a host address"), "{e}");
    let e = probe_err(&["--hosts", "::1"]);
    assert!(e.contains("--hosts ::1") && e.contains("no IPv4 address"), "{e}");
}

#[test]
fn hosts_file_errors_name_the_file_and_line() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "# the cluster\n127.0.0.2\n\n239.0.0.1   # a group by mistake").unwrap();
    let path = f.path().to_str().unwrap().to_string();
    let e = probe_err(&["--hosts-file", &path]);
    assert!(e.contains(&format!("--hosts-file {path}:4: 239.0.0.1")), "{e}");
}

#[test]
fn more_hosts_than_a_run_takes_are_refused_before_any_is_resolved() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    for i in 0..=MAX_HOSTS {
        writeln!(f, "10.0.{}.{}", i / 250, 1 + i % 250).unwrap();
    }
    let path = f.path().to_str().unwrap().to_string();
    let e = probe_err(&["--hosts-file", &path]);
    assert!(e.contains(&format!("--hosts-file {path}: 257 hosts; at most 256")), "{e}");
    let list: Vec<String> = (0..300).map(|i| format!("no-such-host-{i}.invalid")).collect();
    let e = probe_err(&["--hosts", &list.join(",")]);
    assert!(e.contains("--hosts: 300 hosts; at most 256"), "{e}");
}

#[test]
fn an_empty_hosts_file_is_an_error() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "# nobody yet\n\n").unwrap();
    let path = f.path().to_str().unwrap().to_string();
    let e = probe_err(&["--hosts-file", &path]);
    assert!(e.contains("lists no host"), "{e}");
    let e = probe_err(&["--hosts-file", "/nonexistent/hosts.txt"]);
    assert!(e.contains("--hosts-file /nonexistent/hosts.txt: cannot read"), "{e}");
}

#[test]
fn max_loss_is_also_the_verdict_threshold() {
    let s = probe(&probe_args(&["--max-loss", "0.5", "--min-responders", "3", "--min-hosts", "2"])).unwrap();
    assert_eq!(s.judgement.threshold_pct, 0.5);
    let want = Thresholds { max_loss_pct: Some(0.5), min_responders: Some(3), min_hosts: Some(2) };
    assert_eq!(s.thresholds, want);
}

#[test]
fn a_unicast_group_is_refused_with_the_flag_named() {
    let e = probe_err(&["--group", "10.1.2.3"]);
    assert!(e.contains("--group 10.1.2.3: not a multicast address"), "{e}");
}

#[test]
fn discover_waits_as_long_as_its_timeout() {
    let argv = ["mcprobe", "discover", "--iface", "127.0.0.1", "-W", "300ms", "--count", "3"];
    let Command::Discover(a) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
    let c = discover(&a).unwrap().probe;
    assert_eq!((c.timeout, c.count, c.interval), (Duration::from_millis(300), 3, Duration::from_millis(20)));
    // --duration alone is obeyed (a default count must not win), and a census stays short.
    let c = |extra: &[&str]| {
        let mut argv = vec!["mcprobe", "discover", "--iface", "127.0.0.1"];
        argv.extend_from_slice(extra);
        let Command::Discover(a) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
        discover(&a)
    };
    assert_eq!(c(&[]).unwrap().probe.count, 5);
    assert_eq!(c(&["--duration", "2s"]).unwrap().probe.count, 100);
    assert_eq!(c(&["--count", "7"]).unwrap().probe.count, 7);
    let e = format!("{:#}", c(&["--duration", "1m"]).err().unwrap());
    assert!(e.starts_with("--duration 1m:"), "{e}");
    // The old spelling still works.
    let argv = ["mcprobe", "discover", "--iface", "127.0.0.1", "--wait", "1s"];
    assert!(Cli::try_parse_from(argv).is_ok());
}

#[test]
fn churn_takes_a_list_of_groups() {
    let parse = |extra: &[&str]| {
        let mut argv = vec!["mcprobe", "respond", "--iface", "127.0.0.1", "--churn", "2s"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map_err(|e| e.to_string()).and_then(|c| {
            let Command::Respond(a) = c.command else { unreachable!() };
            respond(&a).map_err(|e| format!("{e:#}"))
        })
    };
    // Without --groups the one group would be left half the time.
    assert!(parse(&[]).unwrap_err().contains("--groups"));
    assert!(parse(&["--groups", "239.1.1.1"]).unwrap_err().starts_with("--churn 2s: --groups has one group"));
    assert_eq!(parse(&["--groups", "239.1.1.0/30"]).unwrap().churn, Some(Duration::from_secs(2)));
}

#[test]
fn respond_names_are_bounded_and_not_empty() {
    let parse = |extra: &[&str]| {
        let mut argv = vec!["mcprobe", "respond", "--iface", "127.0.0.1"];
        argv.extend_from_slice(extra);
        let Command::Respond(a) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
        respond(&a)
    };
    assert_eq!(parse(&["--name", "rack1-node7"]).unwrap().name, "rack1-node7");
    let long = "x".repeat(65);
    assert!(format!("{:#}", parse(&["--name", &long]).unwrap_err()).contains("at most 64 bytes"));
    assert!(format!("{:#}", parse(&["--name", ""]).unwrap_err()).contains("--name"));
    assert!(!parse(&[]).unwrap().name.is_empty(), "the host name by default");
}

#[test]
fn duration_is_a_deadline_and_count_is_not() {
    let c = probe(&probe_args(&["--rate", "1000000", "--duration", "2s"])).unwrap().probe;
    assert_eq!((c.count, c.deadline), (2_000_000, Some(Duration::from_secs(2))));
    let c = probe(&probe_args(&["--count", "50"])).unwrap().probe;
    assert_eq!((c.count, c.deadline), (50, None));
    // The default run is a 10 s deadline too.
    assert_eq!(probe(&probe_args(&[])).unwrap().probe.deadline, Some(DEFAULT_DURATION));
}

#[test]
fn negative_durations_are_refused_by_the_duration_parser() {
    let e = Cli::try_parse_from(["mcprobe", "probe", "--iface", "127.0.0.1", "--duration", "-1"]).unwrap_err();
    let e = e.to_string();
    assert!(e.contains("'-1'") && e.contains("--duration") && !e.contains("unexpected argument"), "{e}");
}

#[test]
fn host_list_habits_are_named_before_any_lookup() {
    for (entry, why) in [
        ("10.77.0.3:24242", "without a port"),
        ("a b", "one host per line"),
        ("10.0.0.0/24", "not a network"),
        ("[::1]:24242", "without a port"),
    ] {
        let e = probe_err(&["--hosts", entry]);
        assert!(e.contains(why) && !e.contains("Name or service"), "{entry}: {e}");
    }
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "127.0.0.2\n10.77.0.3:24242").unwrap();
    let e = probe_err(&["--hosts-file", f.path().to_str().unwrap()]);
    assert!(e.contains(":2: 10.77.0.3:24242") && e.contains("without a port"), "{e}");
}

#[test]
fn names_with_control_characters_are_refused() {
    let Command::Respond(a) =
        Cli::try_parse_from(["mcprobe", "respond", "--iface", "127.0.0.1", "--name", "a\nb"]).unwrap().command
    else {
        unreachable!()
    };
    let e = format!("{:#}", respond(&a).unwrap_err());
    assert!(e.contains("control characters") && e.contains("a\\nb"), "{e}");
}

#[test]
fn without_iface_the_route_names_the_interface() {
    // On loopback only: a group routed via lo, as every test machine has for 127/8? No: the
    // multicast route depends on the machine, so only check that a named interface is kept.
    let c = probe(&probe_args(&[])).unwrap().probe;
    let i = c.iface.expect("--iface 127.0.0.1");
    assert_eq!((i.name.as_str(), i.by_route), ("lo", false));
}

#[test]
fn the_ack_port_is_not_the_group_port_and_its_block_fits() {
    let c = probe(&probe_args(&["--ack-port", "40000", "--hosts", "127.0.0.2,127.0.0.3"])).unwrap().probe;
    assert_eq!((c.ack_port, c.unicast_port(0), c.unicast_port(1)), (Some(40000), Some(40001), Some(40002)));
    assert_eq!(probe(&probe_args(&[])).unwrap().probe.ack_port, None);
    let e = probe_err(&["--ack-port", "24242"]);
    assert!(e.contains("--ack-port 24242") && e.contains("the same as --port"), "{e}");
    let e = probe_err(&["--ack-port", "24241", "--hosts", "127.0.0.2"]);
    assert!(e.contains("--ack-port 24241") && e.contains("24241-24242 include --port 24242"), "{e}");
    let e = probe_err(&["--ack-port", "65535", "--hosts", "127.0.0.2"]);
    assert!(e.contains("--ack-port 65535") && e.contains("65535-65536") && e.contains("at most 65534"), "{e}");
    // serve takes two blocks.
    let e = check_ack_port(Some(65534), "field 'ack_port'", 24242, 0, 2).unwrap();
    assert_eq!(e, Some(65534));
    let e = check_ack_port(Some(65535), "field 'ack_port'", 24242, 0, 2).unwrap_err();
    assert!(e.starts_with("field 'ack_port' 65535"), "{e}");
}
