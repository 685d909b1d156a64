//! The module graph as the manual's *Layout* chapter draws it: each module imports only the
//! layers below it, the graph has no cycle, and the pure layers take no clock and do no I/O.
//! Read from the sources (every `crate::name` outside tests and comments), so a new import that
//! breaks the layering fails here with the file and the line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each module may import: the layout, from the bottom up.
const ALLOWED: &[(&str, &[&str])] = &[
    // Pure: the packet format, the accounting, the run result, query decoding.
    ("wire", &[]),
    ("auth", &["wire"]),
    ("stats", &["wire"]),
    ("run", &["stats"]),
    ("querier", &[]),
    // The range and prefix parser of group lists; what a stream's datagrams say (decoders and
    // figures over arrival times given; a capture file read).
    ("groups", &[]),
    ("stream", &["groups"]),
    // Sockets and the engines over them.
    // (the packet tap reads just enough of the wire format to count this run's acks)
    ("net", &["run", "wire"]),
    ("querier::watch", &["querier", "net"]),
    ("stream::receive", &["stream", "net"]),
    // doctor's checks are pure over the facts gathered (the route table's types are net's);
    // gathering reads the host.
    ("doctor", &["net"]),
    ("doctor::gather", &["doctor", "net", "querier", "querier::watch"]),
    ("prober", &["auth", "net", "run", "stats", "wire"]),
    ("responder", &["auth", "net", "wire"]),
    // What a run found (pure), and the renderers of it, and the report folder on disk.
    ("findings", &["querier", "run", "stats"]),
    (
        "output",
        &[
            "doctor",
            "findings",
            "maxgroups",
            "maxgroups::driver",
            "maxrate",
            "mesh",
            "querier",
            "run",
            "stats",
            "stream",
        ],
    ),
    ("folder", &["findings", "output", "run", "stats"]),
    // The searches of max-rate and mesh over findings (pure), and max-rate's engine.
    ("maxrate", &["findings", "stats"]),
    // The group capacity search's judge (pure).
    ("maxgroups", &["findings"]),
    ("maxgroups::driver", &["maxgroups", "findings", "prober", "wire"]),
    ("maxrate::driver", &["maxrate", "findings", "prober", "run"]),
    ("mesh", &["findings", "stats"]),
    // serve's [[watch]] entries run the stream watch's engine and receiver.
    (
        "serve",
        &[
            "auth",
            "findings",
            "net",
            "prober",
            "querier",
            "querier::watch",
            "run",
            "stats",
            "stream",
            "stream::receive",
            "wire",
        ],
    ),
    // Flags (clap only; the value parsers of group lists and stream fields live with what they
    // parse), validated configurations, the commands.
    ("cli", &["groups", "stream"]),
    (
        "config",
        &[
            "auth",
            "cli",
            "doctor",
            "findings",
            "groups",
            "maxgroups",
            "maxgroups::driver",
            "maxrate",
            "maxrate::driver",
            "net",
            "prober",
            "responder",
            "serve",
            "stream",
            "wire",
        ],
    ),
    (
        "commands",
        &[
            "cli",
            "config",
            "doctor",
            "doctor::gather",
            "findings",
            "folder",
            "maxgroups",
            "maxgroups::driver",
            "maxrate",
            "maxrate::driver",
            "mesh",
            "net",
            "output",
            "prober",
            "querier",
            "querier::watch",
            "responder",
            "run",
            "serve",
            "stats",
            "stream",
            "stream::receive",
        ],
    ),
];

/// Modules that must take no clock and do no I/O (their tests aside).
const PURE: &[&str] = &["wire", "stats", "run", "querier", "findings", "maxgroups"];
const IMPURE: &[&str] =
    &["Instant::now", "SystemTime::now", "std::fs", "UdpSocket", "TcpStream", "println!", "eprintln!"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The node a file belongs to: its top module, or `querier::watch`.
fn node(rel: &Path) -> String {
    let s = rel.to_string_lossy();
    for sub in ["querier/watch", "maxrate/driver", "maxgroups/driver", "stream/receive", "doctor/gather"] {
        if s.starts_with(sub) {
            return sub.replace('/', "::");
        }
    }
    s.split('/').next().unwrap().trim_end_matches(".rs").to_string()
}

/// The file's code without its inline test module (at the end, by convention) and comments.
fn code(text: &str) -> String {
    let before_tests = text.split("#[cfg(test)]\nmod tests {").next().unwrap();
    before_tests.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

#[test]
fn modules_import_only_the_layers_below_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let allowed: BTreeMap<&str, BTreeSet<&str>> =
        ALLOWED.iter().map(|(m, d)| (*m, d.iter().copied().collect())).collect();
    let mut problems = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap().to_path_buf();
        let name = rel.file_name().unwrap().to_string_lossy();
        // Test-only files and the crate roots.
        if name == "tests.rs"
            || name == "synthetic.rs"
            || name == "compat_tests.rs"
            || name == "lib.rs"
            || name == "main.rs"
        {
            continue;
        }
        let me = node(&rel);
        let text = code(&std::fs::read_to_string(&f).unwrap());
        for (i, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + 7..];
                let m: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                let target =
                    if m == "querier" && rest.starts_with("querier::watch") { "querier::watch".to_string() } else { m };
                if target.is_empty() || target == me {
                    continue;
                }
                graph.entry(me.clone()).or_default().insert(target.clone());
                let ok = allowed.get(me.as_str()).is_some_and(|a| a.contains(target.as_str()));
                if !ok {
                    problems.push(format!("src/{}:{}: {me} imports {target}", rel.display(), i + 1));
                }
            }
            if PURE.contains(&me.as_str()) {
                for bad in IMPURE.iter().filter(|b| line.contains(*b)) {
                    problems.push(format!("src/{}:{}: {me} is pure but uses {bad}", rel.display(), i + 1));
                }
            }
        }
        if !allowed.contains_key(me.as_str()) {
            problems.push(format!("src/{}: module {me} is not in the layout", rel.display()));
        }
    }
    // No cycle: every module's imports reach back to it never.
    for start in graph.keys() {
        let mut stack: Vec<&String> = graph[start].iter().collect();
        let mut seen = BTreeSet::new();
        while let Some(m) = stack.pop() {
            if m == start {
                problems.push(format!("cycle through {start}"));
                break;
            }
            if seen.insert(m.clone()) {
                stack.extend(graph.get(m).into_iter().flatten());
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "the layering is broken:\n{}", problems.join("\n"));
}
