//! The JSON report checked against `docs/report.schema.json` (oha's schema test is the model):
//! real output of the binary on loopback, in the shapes a run can take.

use crate::common;

use common::*;
use serde_json::Value;

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON schema")
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value) {
    let errors: Vec<String> = v.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

fn json_of(out: std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

#[test]
fn probe_json_follows_the_schema() {
    let v = validator();
    let port = free_port();
    let _a = Responder::start(port, "alpha");
    let _b = Responder::start(port, "beta");
    let args = ["--count", "40", "--rate", "200", "--timeout", "300ms", "--json"];
    let doc = json_of(run(probe_cmd(port, &args)));
    assert_eq!(doc["responders"].as_array().unwrap().len(), 2, "{doc:#}");
    assert_valid(&v, &doc);
    // With --hosts: unicast rows and the diagnosis. On lo 127.0.0.9 reaches the same responders:
    // one host listed twice, judged once, with a finding that says so.
    let doc = json_of(run(probe_cmd(port, &[&args[..], &["--hosts", "127.0.0.1,127.0.0.9"]].concat())));
    assert!(doc["diagnosis"]["hosts"].as_array().unwrap().len() == 1, "{doc:#}");
    assert_valid(&v, &doc);
    // A host that is not ok, with its causes: a responder on another group (unicast reaches it,
    // multicast does not).
    let other = free_port();
    let mut c = bin();
    c.args(["respond", "--iface", "127.0.0.1", "--group", "239.255.42.99", "--port", &other.to_string()]);
    let _deaf = Responder::spawn(c);
    let doc = json_of(run(probe_cmd(other, &[&args[..], &["--hosts", "127.0.0.1"]].concat())));
    let hosts = doc["diagnosis"]["hosts"].as_array().unwrap();
    assert!(hosts.len() == 1 && hosts[0]["verdict"] == "multicast-lost", "{doc:#}");
    assert!(!hosts[0]["causes"].as_array().unwrap().is_empty(), "{doc:#}");
    assert_valid(&v, &doc);
}

/// `--groups` on loopback: one responder joined to every group, one to all but three; the
/// JSON's `groups` names the three, and follows the schema.
#[test]
fn groups_json_follows_the_schema() {
    let v = validator();
    let port = free_port();
    let p = port.to_string();
    let responder = |name: &str, groups: &str| {
        let mut c = bin();
        c.args(["respond", "--iface", "127.0.0.1", "--port", &p, "--name", name, "--groups", groups]);
        Responder::spawn(c)
    };
    let _a = responder("alpha", "239.77.0.0/26");
    let _b = responder("beta", "239.77.0.0-239.77.0.9,239.77.0.13-239.77.0.63");
    let mut c = bin();
    c.args(["probe", "--iface", "127.0.0.1", "--port", &p, "--groups", "239.77.0.0/26", "--quiet"]).args([
        "--count",
        "256",
        "--rate",
        "500",
        "--timeout",
        "300ms",
        "--json",
    ]);
    let doc = json_of(run(c));
    assert_valid(&v, &doc);
    let g = &doc["groups"];
    assert_eq!(g["count"], 64, "{g:#}");
    let missing = |name: &str| {
        let r = g["responders"].as_array().unwrap().iter().find(|r| r["responder"] == name).unwrap();
        r["missing"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(missing("alpha"), Vec::<String>::new());
    assert_eq!(missing("beta"), ["239.77.0.10", "239.77.0.11", "239.77.0.12"]);
}

#[test]
fn json_of_a_run_nobody_answered_follows_the_schema() {
    let v = validator();
    let out = run(probe_cmd(free_port(), &["--count", "5", "--rate", "100", "--timeout", "200ms", "--json"]));
    assert_eq!(out.status.code(), Some(1), "nothing answered is exit code 1");
    let doc = json_of(out);
    assert!(doc["findings"][0]["text"].as_str().unwrap().contains("no responder answered"), "{doc:#}");
    assert_valid(&v, &doc);
}

#[test]
fn discover_json_follows_the_schema() {
    let v = validator();
    let port = free_port();
    let _a = Responder::start(port, "alpha");
    let mut c = bin();
    c.args(["discover", "--iface", "127.0.0.1", "--group", GROUP, "--port", &port.to_string(), "--json"]);
    let doc = json_of(run(c));
    assert_eq!(doc["responders"][0]["responder"], "alpha");
    assert_valid(&v, &doc);
}

#[test]
fn the_schema_rejects_what_it_should() {
    // Not a vacuous schema: a number where a big integer must be a string, an unknown verdict
    // and a missing field are each refused.
    let v = validator();
    let port = free_port();
    let _a = Responder::start(port, "alpha");
    let mut doc = json_of(run(probe_cmd(port, &["--count", "10", "--rate", "200", "--timeout", "200ms", "--json"])));
    assert_valid(&v, &doc);
    let mut bad = doc.clone();
    bad["outages"] = serde_json::json!([{
        "responder": "x", "responder_id": "0000000000000001", "start_s": 0.1, "end_s": null,
        "duration_s": null, "probes_lost": 3, "first_lost_seq": 1,
        "start_unix_ns": 1795737600000000000u64, "end_unix_ns": null
    }]);
    assert!(!v.is_valid(&bad), "start_unix_ns must be a string");
    bad["outages"][0]["start_unix_ns"] = Value::from("1795737600000000000");
    assert!(v.is_valid(&bad), "{:?}", v.iter_errors(&bad).map(|e| e.to_string()).collect::<Vec<_>>());
    doc["responders"][0]["verdict"] = Value::from("fine");
    assert!(!v.is_valid(&doc));
    doc["responders"][0]["verdict"] = Value::Null;
    doc.as_object_mut().unwrap().remove("sent");
    assert!(!v.is_valid(&doc));
}

/// `max-groups --json` says what its text says: the ramping responder's count and failure, and
/// the responder that answered without ramping. Loopback, 16 groups ramped 8 a second.
#[test]
fn max_groups_json_says_what_the_text_says() {
    let port = free_port();
    let p = port.to_string();
    let responder = |name: &str, extra: &[&str]| {
        let mut c = bin();
        c.args(["respond", "--iface", "127.0.0.1", "--port", &p, "--name", name, "--groups", "239.77.5.0/28"]);
        c.args(extra);
        Responder::spawn(c)
    };
    let _a = responder("alpha", &["--ramp", "8/1s"]);
    let _b = responder("beta", &[]);
    let search = |json: bool| {
        let mut c = bin();
        c.args(["max-groups", "--iface", "127.0.0.1", "--port", &p, "--groups", "239.77.5.0/28", "--quiet"]);
        c.args(["--step", "1s", "--max-steps", "12"]);
        if json {
            c.arg("--json");
        }
        let out = run(c);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let doc = json_of(search(true));
    let text = String::from_utf8(search(false).stdout).unwrap();
    assert_eq!(doc["groups"], 16, "{doc:#}");
    let alpha = &doc["responders"][0];
    assert_eq!((alpha["responder"].as_str(), alpha["address"].as_str()), (Some("alpha"), Some("127.0.0.1")), "{doc:#}");
    let line = format!(
        "alpha (127.0.0.1): {} groups worked; failure: {}: {}",
        alpha["worked"],
        alpha["failure"].as_str().unwrap(),
        alpha["explanation"].as_str().unwrap()
    );
    assert!(text.contains(&line), "the text does not say {line:?}:\n{text}\n{doc:#}");
    assert_eq!(alpha["worked"], 16, "every group of the ramp arrives on loopback: {doc:#}");
    assert_eq!(doc["not_ramping"][0]["responder"], "beta", "{doc:#}");
    assert!(text.contains("beta (127.0.0.1): answered but does not ramp"), "{text}");
}
