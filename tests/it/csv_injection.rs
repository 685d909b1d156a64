//! CSV cells a spreadsheet would run are neutralised (issue 24 item 9, OWASP "CSV Injection"):
//! a responder's name is chosen by whoever runs the responder, and lands in summary.csv and
//! intervals.csv; one that starts with `=`, `+`, `-` or `@` is written with a leading `'`.

use crate::common;

use common::*;

#[test]
fn a_formula_as_a_responder_name_is_written_as_text() {
    let port = free_port();
    let names = ["=HYPERLINK(\"http://x.invalid\",\"y\")", "+cmd|' /C calc'!A0", "@SUM(1)"];
    let _r: Vec<Responder> = names.iter().map(|n| Responder::start(port, n)).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut c = probe_cmd(port, &["--count", "100", "--rate", "200", "--timeout", "300ms"]);
    c.arg("--out").arg(dir.path());
    let out = run(c);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in ["summary.csv", "intervals.csv"] {
        let rows = csv_rows(&dir.path().join(file));
        let mut seen: Vec<String> = rows.iter().map(|r| r["responder"].clone()).collect();
        seen.sort();
        seen.dedup();
        let mut want: Vec<String> = names.iter().map(|n| format!("'{n}")).collect();
        want.sort();
        assert_eq!(seen, want, "{file}");
    }
    // report reads them back as the names they were: each responder's RTT distribution found.
    let to = tempfile::tempdir().unwrap();
    let mut c = bin();
    c.arg("report").arg(dir.path()).arg("--out").arg(to.path());
    let out = run(c);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(to.path().join("report.html")).unwrap();
    assert!(html.contains("@SUM(1)") && !html.contains("&#39;@SUM(1)") && !html.contains("'@SUM(1)"), "names as given");
}
