//! `mcprobe --version`: the package version and the commit the binary was built from.

use crate::common::bin;

use std::path::Path;
use std::process::Command;

fn version(flag: &str) -> String {
    let out = bin().arg(flag).output().expect("mcprobe runs");
    assert!(out.status.success(), "{flag}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn version_names_the_package_version_and_the_commit() {
    let line = version("--version");
    assert_eq!(version("-V"), line);
    // "mcprobe 0.1.0 (1a2b3c4)" or "(1a2b3c4-dirty)" or "(unknown)": one line.
    let rest = line.strip_suffix('\n').and_then(|l| l.strip_prefix("mcprobe ")).unwrap_or_else(|| panic!("{line:?}"));
    let (ver, commit) = rest.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
    assert_eq!(ver, env!("CARGO_PKG_VERSION"), "{line:?}");
    let commit = commit.strip_prefix('(').and_then(|c| c.strip_suffix(')')).unwrap_or_else(|| panic!("{line:?}"));
    assert!(!commit.is_empty() && !commit.contains(char::is_whitespace), "{line:?}");

    // Built from a git checkout: the commit is this checkout's HEAD (short hash, maybe -dirty).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let head = Command::new("git").arg("-C").arg(root).args(["rev-parse", "HEAD"]).output();
    if let Some(head) = head.ok().filter(|h| h.status.success() && root.join(".git").exists()) {
        let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
        let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
        assert!(hash.len() >= 7 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{line:?}");
        assert!(head.starts_with(hash), "--version says {hash}, HEAD is {head}");
    }
}
