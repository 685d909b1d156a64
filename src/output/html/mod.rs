//! `report.html`: one self-contained page (inline SVG and CSS, no script, font or image fetched,
//! opens from `file://`, prints) from one report folder, or from several merged into a prober ×
//! responder matrix (with `matrix.csv`) or, for one prober at different times, a trend table.

pub(crate) mod charts;
pub(crate) mod data;
pub(crate) mod merge;
pub(crate) mod page;

/// The page's file name.
pub(crate) const REPORT: &str = "report.html";

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn fmt_opt(v: Option<f64>, precision: usize) -> String {
    v.map_or_else(|| "–".to_string(), |x| format!("{x:.precision$}"))
}

/// Readable at 1280 px, prints on A4 without cutting a chart; system fonts only.
const CSS: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#1b1b1b;margin:0 auto;
 max-width:1200px;padding:16px 20px}
h1{font-size:24px;margin:8px 0}h2{font-size:19px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:3px}
.verdict{font-size:17px;font-weight:600}
dl.run{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0;font-size:14px}
dl.run dt{color:#555}dl.run dd{margin:0;font-family:ui-monospace,'DejaVu Sans Mono',monospace;word-break:break-all}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:2px 7px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th:first-child,td:first-child,th.t,td.t{text-align:left}th{background:#f4f4f4;position:sticky;top:0}
tr.lossy td{background:#fff4ec}.good{color:#00704f}.bad{color:#b23c00}
figure.chart{margin:6px 0}figure.chart svg{width:100%;height:auto;display:block}
ul.legend{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:4px 16px;font-size:13px}
ul.legend i{display:inline-block;width:14px;height:14px;border-radius:2px;margin-right:5px;vertical-align:-2px}
.note{color:#555;font-size:13px}
table.heat td{min-width:52px;text-align:center}table.heat td.absent{background:#eee;color:#888}
table.runs td:last-child{font-family:ui-monospace,monospace;font-size:12px}
div.scroll{overflow-x:auto}
details summary{cursor:pointer;color:#0072B2;font-size:13px;margin:4px 0}
footer{margin-top:30px;color:#666;font-size:12px}\nul.findings{padding-left:20px}ul.findings li{margin:3px 0}li.finding.host{font-weight:600}
@media print{body{max-width:none;padding:0;font-size:11px}section,figure{break-inside:avoid}th{position:static}}
";

/// A complete page around `body`; the footer names `files`, the files beside it.
pub(crate) fn page(title: &str, body: &str, run_ids: &str, files: &[String]) -> String {
    let beside = if files.is_empty() {
        String::new()
    } else {
        format!(
            " Files beside this page: {} (the manual's Reports chapter says what each holds).",
            esc(&files.join(", "))
        )
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"generator\" content=\"mcprobe {}\"><meta name=\"mcprobe-run\" content=\"{}\">\
         <title>{}</title><style>{CSS}</style></head><body>\n{body}\
         <footer>Written by mcprobe {} from run {}.{beside}</footer>\
         </body></html>\n",
        env!("CARGO_PKG_VERSION"),
        esc(run_ids),
        esc(title),
        env!("CARGO_PKG_VERSION"),
        esc(run_ids)
    )
}

/// A *Findings* section: every finding in words, as the terminal and the JSON say them.
pub(crate) fn findings_section(id: &str, title: &str, findings: &[crate::output::words::Said]) -> String {
    if findings.is_empty() {
        return String::new();
    }
    let mut items = String::new();
    for s in findings {
        let topic = serde_json::to_value(s.topic).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        items.push_str(&format!("<li class=\"finding {}\">{}</li>", esc(&topic), esc(&s.text)));
    }
    format!(
        "<section id=\"{}\"><h2>{}</h2><p>What mcprobe found, in the words the terminal printed \
         (report.json has them too).</p><ul class=\"findings\">{items}</ul></section>\n",
        esc(id),
        esc(title)
    )
}
