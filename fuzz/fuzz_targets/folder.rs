//! Fuzz the report folder reader and report.html's renderer, `mcprobe report`'s path from a
//! folder's files to its page: `mcprobe::folder::read::report_from_files`.
//!
//! Checks: it never panics and never hangs (libFuzzer's `-timeout` catches a hang: an `inf` in
//! intervals.csv once kept the chart code busy for ever); a folder it cannot read is an error.
//!
//! Input: files separated by a 0xFF byte, in this order: meta.json, summary.csv, intervals.csv,
//! outages.csv, report.json, then `.hgrm` files, named after summary.csv's rows in order (a
//! missing part is a missing file). `seed_corpus.py` writes a real folder's files this way.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 5] = ["meta.json", "summary.csv", "intervals.csv", "outages.csv", "report.json"];

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0xff);
    let mut files = BTreeMap::new();
    for name in NAMES {
        if let Some(p) = parts.next() {
            files.insert(name.to_string(), p.to_vec());
        }
    }
    // The .hgrm files of summary.csv's rows, by the tags the reader will look for.
    let tags: Vec<String> = files.get("summary.csv").map_or_else(Vec::new, |s| hgrm_names(s));
    for (tag, p) in tags.into_iter().zip(parts) {
        files.insert(tag, p.to_vec());
    }
    let _ = mcprobe::folder::read::report_from_files(&files);
});

/// `rtt.NAME.ID8.PATH.hgrm` of each data row of a summary.csv, as the reader names them.
fn hgrm_names(summary: &[u8]) -> Vec<String> {
    let mut r = csv::Reader::from_reader(summary);
    let Ok(headers) = r.headers().cloned() else { return Vec::new() };
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(n), Some(i), Some(p)) = (col("responder"), col("responder_id"), col("path")) else { return Vec::new() };
    r.records()
        .map_while(Result::ok)
        .map(|rec| {
            let name: String = rec
                .get(n)
                .unwrap_or("")
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
                .collect();
            let name = if name.is_empty() { "unnamed".to_string() } else { name };
            let id = rec.get(i).unwrap_or("");
            format!("rtt.{name}.{}.{}.hgrm", id.get(..8).unwrap_or(id), rec.get(p).unwrap_or(""))
        })
        .collect()
}
