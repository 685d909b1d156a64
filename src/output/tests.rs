//! Output pinned by snapshots: every renderer fed with findings of synthetic runs (real
//! accounting, made-up acks, fixed times), so a change in what users see shows as a diff.
//! Review a change with `cargo insta review`, or accept with `INSTA_UPDATE=always cargo test`.

use super::*;
use crate::findings::synthetic::{outcome, Answerer};
use crate::findings::{Judgement, DEFAULT_THRESHOLD_PCT};
use crate::folder::csv::{write_final_csvs, StreamedCsvs};

fn judge() -> Judgement {
    Judgement::new(DEFAULT_THRESHOLD_PCT, "239.255.42.42:24242".parse().unwrap(), false)
}

fn render(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
    let mut out = Vec::new();
    f(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Three responders: one clean, one losing every 10th probe on the way out, one that restarted.
fn plain_lan() -> Findings {
    let clean = Answerer::new(0x1111_2222_3333_4444, "node-a", "10.0.0.1:24242");
    let mut lossy = Answerer::new(0x5555_6666_7777_8888, "node-b", "10.0.0.2:24242");
    lossy.drop_probe = |s| s % 10 == 3;
    lossy.rtt_us = 900;
    let mut before = Answerer::new(0x9999_aaaa_bbbb_cccc, "node-c", "10.0.0.3:24242");
    before.drop_probe = |s| s >= 60;
    let mut after = Answerer::new(0xdddd_eeee_ffff_0000, "node-c", "10.0.0.3:24242");
    after.drop_probe = |s| s < 70;
    Findings::of(&outcome(100, 1, &[clean, lossy, before, after], &[]), judge())
}

/// `--hosts` with every verdict but degraded, and a stranger, over IPv6.
fn diagnosed_lan() -> Findings {
    let ok = Answerer::new(1, "h2", "[fd77::2]:24242");
    let mc_only = Answerer::new(2, "h3", "[fd77::3]:24242");
    let uc_only = Answerer::new(3, "h4", "[fd77::4]:24242");
    let stranger = Answerer::new(4, "stranger", "[fd77::9]:24242");
    let hosts = [("fd77::2", vec![ok.clone()]), ("fd77::3", vec![]), ("fd77::4", vec![uc_only]), ("fd77::5", vec![])];
    let j = Judgement { group: "[ff15::99]:24242".parse().unwrap(), ..judge() };
    Findings::of(&outcome(50, 1, &[ok, mc_only, stranger], &hosts), j)
}

#[test]
fn table() {
    insta::assert_snapshot!(render(|w| write_table(w, &plain_lan())));
}

#[test]
fn table_and_verdicts_with_hosts() {
    let f = diagnosed_lan();
    insta::assert_snapshot!(render(|w| write_table(w, &f)));
}

#[test]
fn table_when_nothing_answered() {
    let f = Findings::of(&outcome(30, 1, &[], &[]), judge());
    insta::assert_snapshot!(render(|w| write_table(w, &f)));
}

#[test]
fn census() {
    insta::assert_snapshot!(render(|w| write_census(w, &plain_lan())));
}

#[test]
fn json() {
    insta::assert_snapshot!(render(|w| write_json(w, &diagnosed_lan())));
}

#[test]
fn json_of_a_run_with_outages() {
    let mut flaky = Answerer::new(7, "flaky", "10.0.0.7:24242");
    flaky.drop_probe = |s| (20..30).contains(&s) || s >= 95;
    let f = Findings::of(&outcome(100, 1, &[flaky], &[]), judge());
    insta::assert_snapshot!(render(|w| write_json(w, &f)));
}

#[test]
fn csv_headers() {
    let dir = tempfile::tempdir().unwrap();
    let mut streamed = StreamedCsvs::create(dir.path(), true, 0x5e55).unwrap();
    streamed.write(&[], &[]).unwrap();
    streamed.commit().unwrap();
    write_final_csvs(dir.path(), &plain_lan()).unwrap();
    let mut headers = String::new();
    for name in ["summary.csv", "outages.csv", "intervals.csv", "probes.csv"] {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        headers += &format!("{name}: {}\n", text.lines().next().unwrap());
    }
    insta::assert_snapshot!(headers);
}

#[test]
fn summary_csv() {
    let dir = tempfile::tempdir().unwrap();
    write_final_csvs(dir.path(), &diagnosed_lan()).unwrap();
    insta::assert_snapshot!(std::fs::read_to_string(dir.path().join("summary.csv")).unwrap());
}

/// A querier heard twice, then silent past the wait; an outage after memberships aged out.
fn querier_lan() -> Findings {
    querier_lan_with(&[])
}

fn querier_lan_with(hosts: &[(&str, Vec<Answerer>)]) -> Findings {
    use crate::findings::synthetic::T0;
    use crate::querier::{QuerierObservation, Query, QueryVersion};
    let mut flaky = Answerer::new(7, "flaky", "10.0.0.7:24242");
    flaky.drop_probe = |s| s >= 60;
    let f = Findings::of(&outcome(100, 1, &[flaky], hosts), judge());
    let q =
        Query::general("10.0.0.254", QueryVersion::IgmpV3, Some(Duration::from_secs(1)), Duration::from_millis(500));
    let mut obs = QuerierObservation {
        start_unix_ns: T0 - 3_000_000_000,
        end_unix_ns: T0 + 3_000_000_000,
        wait: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    // Memberships age out 2 × 1 s + 0.5 s after the last query: at 1 s into the run.
    obs.log.record(&q, T0 - 2_500_000_000);
    obs.log.record(&q, T0 - 1_500_000_000);
    f.with_querier(Ok(obs))
}

#[test]
fn table_with_a_querier_gone_silent() {
    insta::assert_snapshot!(render(|w| write_table(w, &querier_lan())));
}

#[test]
fn json_with_a_querier_gone_silent_and_without_a_watch() {
    let f = plain_lan().with_querier(Err("not watching for IGMP queries: a raw socket needs CAP_NET_RAW".into()));
    insta::assert_snapshot!(render(|w| {
        write_json(w, &querier_lan())?;
        write_json(w, &f)
    }));
}

/// h3, h4 and h5 behind a lossy trunk (every 7th probe), h4 with a lossy link of its own too.
#[test]
fn table_with_a_fault_shared_by_three_hosts() {
    let h2 = Answerer::new(2, "h2", "10.0.0.2:24242");
    let mut h3 = Answerer::new(3, "h3", "10.0.0.3:24242");
    h3.drop_probe = |s| s % 7 == 3;
    let mut h4 = Answerer::new(4, "h4", "10.0.0.4:24242");
    h4.drop_probe = |s| s % 7 == 3 || s % 11 == 5;
    let mut h5 = Answerer::new(5, "h5", "10.0.0.5:24242");
    h5.drop_probe = |s| s % 7 == 3 || s == 100;
    let f = Findings::of(&outcome(300, 1, &[h2, h3, h4, h5], &[]), judge());
    insta::assert_snapshot!(render(|w| write_table(w, &f)));
}

/// Forward loss split by responders that report their host drops: h2 drops 6 of its 10 in its
/// own socket buffer, h3 reports none (all network), h4 does not report (an older responder);
/// h3 joined 25 ms into the run.
#[test]
fn table_and_json_with_host_drops_and_a_join_delay() {
    let mut h2 = Answerer::new(2, "h2", "10.0.0.2:24242");
    h2.drop_probe = |s| s % 10 == 3;
    h2.host_dropped = |s| s < 60;
    h2.reports = Some(None);
    let mut h3 = Answerer::new(3, "h3", "10.0.0.3:24242");
    h3.drop_probe = |s| s < 3 || s % 25 == 7;
    h3.reports = Some(Some(25));
    let mut h4 = Answerer::new(4, "h4", "10.0.0.4:24242");
    h4.drop_probe = |s| s % 20 == 1;
    let f = Findings::of(&outcome(100, 1, &[h2, h3, h4], &[]), judge());
    insta::assert_snapshot!(render(|w| write_table(w, &f)));
    let json: serde_json::Value = serde_json::from_str(&render(|w| write_json(w, &f))).unwrap();
    let pick = |i: usize, k: &str| json["responders"][i][k].clone();
    assert_eq!(
        (pick(0, "forward_lost"), pick(0, "forward_host_drops"), pick(0, "forward_network_lost")),
        (10.into(), 6.into(), 4.into())
    );
    assert_eq!((pick(1, "forward_host_drops"), pick(1, "forward_network_lost")), (0.into(), 7.into()));
    assert_eq!(
        (pick(2, "forward_host_drops"), pick(2, "forward_network_lost")),
        (serde_json::Value::Null, serde_json::Value::Null)
    );
    assert_eq!((pick(0, "join_delay_ms"), pick(1, "join_delay_ms")), (serde_json::Value::Null, 5.04.into()));
}

/// A responder whose latest drop report came before some of its forward loss: that part is
/// neither its host's nor the network's (UNTOLD), in the table, the JSON and its line.
#[test]
fn forward_loss_after_the_latest_drop_report_is_untold() {
    let mut h2 = Answerer::new(2, "h2", "10.0.0.2:24242");
    h2.drop_probe = |s| s % 10 == 3;
    h2.host_dropped = |s| s < 60;
    h2.reports = Some(None);
    h2.reports_at = |s| s < 50;
    let f = Findings::of(&outcome(100, 1, &[h2], &[]), judge());
    let table = render(|w| write_table(w, &f));
    insta::assert_snapshot!(table);
    let json: serde_json::Value = serde_json::from_str(&render(|w| write_json(w, &f))).unwrap();
    let pick = |k: &str| json["responders"][0][k].clone();
    // Probes 3, 13, …, 43 before the report at 49 (its host's); 53, …, 93 after it.
    let split =
        [pick("forward_lost"), pick("forward_host_drops"), pick("forward_network_lost"), pick("forward_unreported")];
    assert_eq!(split, [10, 5, 0, 5].map(serde_json::Value::from));
    assert!(table.contains("5 were lost where no report of its host's drops covers them yet"), "{table}");
}

/// `--hosts` (a soak): the host whose outage the querier silence explains, under the verdicts.
#[test]
fn verdicts_with_an_outage_the_querier_silence_explains() {
    let unicast = Answerer::new(7, "flaky", "10.0.0.7:24242");
    let f = querier_lan_with(&[("10.0.0.7", vec![unicast])]);
    insta::assert_snapshot!(render(|w| write_table(w, &f)));
}

/// Runs of every kind of finding, each with its outcome (for the report folder).
fn scenarios() -> Vec<(&'static str, crate::run::Outcome, Findings)> {
    use crate::findings::synthetic::T0;
    use crate::querier::{QuerierObservation, Query, QueryVersion};
    let mut out = Vec::new();
    let mut add = |name, o: crate::run::Outcome, j: Judgement| {
        let f = Findings::of(&o, j);
        out.push((name, o, f));
    };
    // A restart, independent losses.
    let clean = Answerer::new(0x1111_2222_3333_4444, "node-a", "10.0.0.1:24242");
    let mut lossy = Answerer::new(0x5555_6666_7777_8888, "node-b", "10.0.0.2:24242");
    lossy.drop_probe = |s| s % 10 == 3;
    let mut before = Answerer::new(0x9999_aaaa_bbbb_cccc, "node-c", "10.0.0.3:24242");
    before.drop_probe = |s| s >= 60;
    let mut after = Answerer::new(0xdddd_eeee_ffff_0000, "node-c", "10.0.0.3:24242");
    after.drop_probe = |s| s < 70;
    add("restart", outcome(100, 1, &[clean, lossy, before, after], &[]), judge());
    // Every verdict but degraded, a stranger, over IPv6.
    let ok = Answerer::new(1, "h2", "[fd77::2]:24242");
    let mc_only = Answerer::new(2, "h3", "[fd77::3]:24242");
    let uc_only = Answerer::new(3, "h4", "[fd77::4]:24242");
    let stranger = Answerer::new(4, "stranger", "[fd77::9]:24242");
    let hosts = [("fd77::2", vec![ok.clone()]), ("fd77::3", vec![]), ("fd77::4", vec![uc_only]), ("fd77::5", vec![])];
    let j = Judgement { group: "[ff15::99]:24242".parse().unwrap(), ..judge() };
    add("verdicts", outcome(50, 1, &[ok, mc_only, stranger], &hosts), j);
    // A fault shared by three, one with its own loss too; host drops.
    let mut h2 = Answerer::new(2, "h2", "10.0.0.2:24242");
    h2.drop_probe = |s| s % 10 == 3;
    h2.host_dropped = |s| s < 60;
    h2.reports = Some(None);
    let mut h3 = Answerer::new(3, "h3", "10.0.0.3:24242");
    h3.drop_probe = |s| s % 7 == 3;
    let mut h4 = Answerer::new(4, "h4", "10.0.0.4:24242");
    h4.drop_probe = |s| s % 7 == 3 || s % 11 == 5;
    let mut h5 = Answerer::new(5, "h5", "10.0.0.5:24242");
    h5.drop_probe = |s| s % 7 == 3 || s == 100;
    add("shared", outcome(300, 1, &[h2, h3, h4, h5], &[]), judge());
    // Nothing answered.
    add("silence", outcome(20, 1, &[], &[]), judge());
    // A querier gone silent, and the outage it explains under the verdicts.
    let mut flaky = Answerer::new(7, "flaky", "10.0.0.7:24242");
    flaky.drop_probe = |s| s >= 60;
    let unicast = Answerer::new(7, "flaky", "10.0.0.7:24242");
    let o = outcome(100, 1, &[flaky], &[("10.0.0.7", vec![unicast])]);
    let q =
        Query::general("10.0.0.254", QueryVersion::IgmpV3, Some(Duration::from_secs(1)), Duration::from_millis(500));
    let mut obs = QuerierObservation {
        start_unix_ns: T0 - 3_000_000_000,
        end_unix_ns: T0 + 3_000_000_000,
        wait: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    obs.log.record(&q, T0 - 2_500_000_000);
    obs.log.record(&q, T0 - 1_500_000_000);
    let f = Findings::of(&o, judge()).with_querier(Ok(obs));
    out.push(("querier", o, f));
    out
}

/// The same findings reach the terminal, the JSON and report.html (through a real report
/// folder: written, read back, rendered), every one of them, in the same words.
#[test]
fn every_finding_appears_in_the_table_the_json_and_report_html() {
    let mut sections = String::new();
    for (name, mut o, f) in scenarios() {
        let said = words::all(&f);
        assert!(!said.is_empty(), "{name}: a scenario without findings tests nothing");
        let table = render(|w| write_table(w, &f));
        let json: serde_json::Value = serde_json::from_str(&render(|w| write_json(w, &f))).unwrap();
        let in_json: Vec<&str> =
            json["findings"].as_array().unwrap().iter().filter_map(|s| s["text"].as_str()).collect();
        let dir = tempfile::tempdir().unwrap();
        let folder = crate::folder::RunFolder::open(dir.path(), false, o.settings.session).unwrap();
        let streams = crate::folder::Streams::open(folder.writer(), false, o.settings.session, Duration::from_secs(1));
        crate::folder::finish_run(folder, streams, &f, &mut o, true, None, |_| Ok(())).unwrap();
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        for s in &said {
            assert!(table.contains(&s.text), "{name}: the table lacks {:?}\n{table}", s.text);
            assert!(in_json.contains(&s.text.as_str()), "{name}: the JSON lacks {:?}", s.text);
            assert!(html.contains(&super::html::esc(&s.text)), "{name}: report.html lacks {:?}", s.text);
        }
        assert_eq!(in_json.len(), said.len(), "{name}: the JSON says more than the table");
        let start = html.find("<section id=\"findings\">").unwrap();
        let end = start + html[start..].find("</section>").unwrap() + "</section>".len();
        sections.push_str(&format!("== {name}\n{}\n", html[start..end].replace("</li>", "</li>\n")));
    }
    insta::assert_snapshot!("report_html_findings_sections", sections);
}

/// max-rate's table: one responder capped by its own --rate-limit, one by the path.
#[test]
fn max_rate_table_marks_a_result_capped_by_the_rate_limit() {
    use crate::findings::ResponderId;
    use crate::maxrate::judge::{ResponderTrial, TrialResult};
    use crate::maxrate::search::Phase;
    use crate::maxrate::{ResponderResult, SearchOutcome};
    use crate::stats::Figures;
    let who = |id: u64, name: &str| (ResponderId(id), name.to_string(), format!("10.0.0.{id}:24242").parse().unwrap());
    let trial = |index: u32, rate: u64, limited: u64, lost: u64| {
        let fig = |lim: u64, lost: u64| Figures {
            sent: rate,
            received: rate - lim - lost,
            limited: lim,
            lost,
            loss: crate::stats::LossSplit { forward: lost, ..Default::default() },
            ..Figures::default()
        };
        let (a, b) = (who(2, "h2"), who(3, "h3"));
        TrialResult {
            index,
            phase: Phase::Step,
            session: index as u64,
            rate_asked: rate,
            rate_achieved: rate as f64,
            local_drops: 0,
            send_errors: 0,
            responders: vec![
                ResponderTrial { id: a.0, name: a.1, addr: a.2, figures: fig(limited, 0), pass: limited == 0 },
                ResponderTrial { id: b.0, name: b.1, addr: b.2, figures: fig(0, lost), pass: lost == 0 },
            ],
        }
    };
    let trials = vec![trial(1, 10_000, 0, 0), trial(2, 20_000, 9_500, 0), trial(3, 40_000, 29_000, 800)];
    let result = |id: u64, name: &str, rate: u64, fails_at: u64| {
        let w = who(id, name);
        ResponderResult {
            id: w.0,
            name: w.1,
            addr: w.2,
            rate,
            fails_at: Some(fails_at),
            confirmed: true,
            capped_by_limit: SearchOutcome::limited_at(&trials, w.0, fails_at),
        }
    };
    let results = vec![result(2, "h2", 10_000, 20_000), result(3, "h3", 20_000, 40_000)];
    assert!(results[0].capped_by_limit && !results[1].capped_by_limit);
    let o = SearchOutcome { id: 0x5ea7c4, trials, results, complete: true, interrupted: false, sender_limit: None };
    insta::assert_snapshot!(render(|w| super::max_rate::write_table(w, &o, 0.0)));
}

/// max-rate capped at a rate this host could not send: said under the table, and the responder
/// that never failed is limited by this host's sender, not by --max.
#[test]
fn max_rate_says_when_this_host_could_not_send_the_rate() {
    use crate::findings::ResponderId;
    use crate::maxrate::judge::{ResponderTrial, TrialResult};
    use crate::maxrate::search::Phase;
    use crate::maxrate::{ResponderResult, SearchOutcome};
    use crate::stats::Figures;
    let (id, addr) = (ResponderId(2), "10.0.0.2:24242".parse().unwrap());
    let trial = |index: u32, asked: u64, sent: f64| TrialResult {
        index,
        phase: Phase::Step,
        session: index as u64,
        rate_asked: asked,
        rate_achieved: sent,
        local_drops: 0,
        send_errors: 0,
        responders: vec![ResponderTrial {
            id,
            name: "h2".into(),
            addr,
            figures: Figures { sent: sent as u64, received: sent as u64, ..Figures::default() },
            pass: true,
        }],
    };
    let trials = vec![trial(1, 50_000, 50_000.0), trial(2, 100_000, 61_000.0), trial(3, 100_000, 63_500.0)];
    let results = vec![ResponderResult {
        id,
        name: "h2".into(),
        addr,
        rate: 63_500,
        fails_at: None,
        confirmed: false,
        capped_by_limit: false,
    }];
    let o = SearchOutcome { id: 1, trials, results, complete: true, interrupted: false, sender_limit: Some(100_000) };
    let out = render(|w| super::max_rate::write_table(w, &o, 0.0));
    assert!(out.contains("this host could not send 100000/s (3 trials below 90 % of it, at best 63500/s)"), "{out}");
    assert!(out.contains("this host's sender") && !out.contains("--max"), "{out}");
    assert!(
        out.contains(
            "3 trials; loss tolerance 0%; h2 unconfirmed: settling them needs a rate this host could not send"
        ),
        "{out}"
    );
}

/// mesh's table: this host's row, with every finding under it.
#[test]
fn mesh_table() {
    use crate::findings::ResponderId;
    let own = Answerer::new(1, "me", "10.0.0.1:24242");
    let late = Answerer { drop_probe: |s| s < 20, ..Answerer::new(2, "late", "10.0.0.2:24242") };
    let uc_only = Answerer::new(3, "nomc", "10.0.0.3:24242");
    let o = outcome(100, 1, &[own, late.clone()], &[("10.0.0.2", vec![late]), ("10.0.0.3", vec![uc_only])]);
    let j = Judgement { from_first_answer: true, own: Some(ResponderId(1)), ..judge() };
    let f = Findings::of(&o, j);
    let peers: Vec<std::net::IpAddr> = ["10.0.0.2", "10.0.0.3"].iter().map(|p| p.parse().unwrap()).collect();
    let rows = crate::mesh::peer_rows(&f, &peers);
    let me = "10.0.0.1".parse().unwrap();
    insta::assert_snapshot!(render(|w| super::mesh::write_mesh(w, &f, "me", me, &rows, 1.0)));
}

/// `--hosts` against responders with other keys: h2 needs one (these probes carry none), h3 has
/// another, h4 none at all (a keyed prober's view), h5 is silent: verdicts and closing lines.
#[test]
fn table_and_verdicts_with_key_mismatches() {
    use crate::run::KeySign;
    let ok = Answerer::new(1, "h1", "10.0.0.1:24242");
    let hosts = [
        ("10.0.0.1", vec![ok.clone()]),
        ("10.0.0.2", vec![]),
        ("10.0.0.3", vec![]),
        ("10.0.0.4", vec![]),
        ("10.0.0.5", vec![]),
    ];
    let mut o = outcome(50, 1, &[ok], &hosts);
    let ip = |s: &str| s.parse().unwrap();
    (0..5).for_each(|_| o.keys.record(ip("10.0.0.2"), KeySign::KeyNeeded));
    (0..4).for_each(|_| o.unicast[1].keys.record(ip("10.0.0.2"), KeySign::KeyNeeded));
    (0..6).for_each(|_| o.keys.record(ip("10.0.0.3"), KeySign::OtherKey));
    (0..50).for_each(|_| o.keys.record(ip("10.0.0.4"), KeySign::UnkeyedAck));
    (0..50).for_each(|_| o.unicast[3].keys.record(ip("10.0.0.4"), KeySign::UnkeyedAck));
    let f = Findings::of(&o, judge());
    insta::assert_snapshot!(render(|w| write_table(w, &f)));
    let json: serde_json::Value = serde_json::from_str(&render(|w| write_json(w, &f))).unwrap();
    let h2 = &json["diagnosis"]["hosts"][1];
    assert_eq!(
        (h2["verdict"].as_str(), h2["key_evidence"]["key_needed_notices"].as_u64()),
        (Some("key-mismatch"), Some(9))
    );
    assert_eq!(json["diagnosis"]["hosts"][4]["key_evidence"], serde_json::Value::Null);
}

/// Nothing answered, and a responder said it needs a key: the closing line names the key
/// mismatch, not the generic checklist.
#[test]
fn table_when_nothing_answered_but_a_key_is_needed() {
    let mut o = outcome(30, 1, &[], &[]);
    (0..3).for_each(|_| o.keys.record("10.0.0.2".parse().unwrap(), crate::run::KeySign::KeyNeeded));
    let f = Findings::of(&o, judge());
    insta::assert_snapshot!(render(|w| write_table(w, &f)));
}

/// The host path: this host's firewall dropped the acks of h2 (multicast), and h3's host
/// drops the multicast probes before its socket, which its unicast acks report.
#[test]
fn table_json_and_verdicts_with_drops_on_the_hosts_paths() {
    use crate::run::{AckSightings, AckWatch};
    let mut h3 = Answerer::new(3, "h3", "10.0.0.3:24242");
    h3.reports = Some(None);
    h3.filtered_per_probe = Some(1);
    let h2 = Answerer::new(2, "h2", "10.0.0.2:24242");
    let hosts = [("10.0.0.2", vec![h2]), ("10.0.0.3", vec![h3])];
    let mut o = outcome(40, 1, &[], &hosts);
    o.ack_watch = Some(AckWatch::Watched(AckSightings {
        by_source: vec![("10.0.0.2".parse().unwrap(), 80, 40), ("10.0.0.3".parse().unwrap(), 40, 40)],
        settled: true,
        ports: vec![41234, 41235, 41236],
        ..AckSightings::default()
    }));
    let f = Findings::of(&o, judge());
    insta::assert_snapshot!(render(|w| {
        write_table(w, &f)?;
        write_json(w, &f)
    }));
}
