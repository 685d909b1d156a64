//! The git commit this binary is built from, for `mcprobe --version` (env MCPROBE_COMMIT at
//! compile time). In order:
//! 1. a git checkout: `git rev-parse --short HEAD`, with `-dirty` when tracked files differ;
//! 2. a packaged crate (`cargo package`, crates.io): the sha1 cargo recorded in
//!    `.cargo_vcs_info.json`;
//! 3. the environment variable MCPROBE_COMMIT (a tarball built by a distribution);
//! 4. `unknown`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MCPROBE_COMMIT");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let commit = from_git(&dir)
        .or_else(|| from_vcs_info(&dir))
        .or_else(|| std::env::var("MCPROBE_COMMIT").ok().filter(|c| !c.trim().is_empty()))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=MCPROBE_COMMIT={}", commit.trim());
}

/// `git ARGS` in `dir`: its trimmed stdout, when it ran and succeeded.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn from_git(dir: &Path) -> Option<String> {
    // Only this crate's own checkout: not a parent repository it happens to be unpacked in.
    if !dir.join(".git").exists() {
        return None;
    }
    let hash = git(dir, &["rev-parse", "--short", "HEAD"]).filter(|h| !h.is_empty())?;
    // Rebuild when HEAD moves (a commit, a checkout) and when the index or a tracked file
    // changes (the dirty mark). A worktree's HEAD is in its own git dir, branches in the
    // common one.
    if let Some(git_dir) = git(dir, &["rev-parse", "--absolute-git-dir"]) {
        let git_dir = PathBuf::from(git_dir);
        println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
        println!("cargo:rerun-if-changed={}", git_dir.join("index").display());
        let common = git(dir, &["rev-parse", "--git-common-dir"]).map(|c| dir.join(c)).unwrap_or(git_dir);
        println!("cargo:rerun-if-changed={}", common.join("packed-refs").display());
        if let Some(head_ref) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", common.join(head_ref).display());
        }
    }
    for tracked in ["src", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", dir.join(tracked).display());
    }
    // `status` refreshes the index in memory only (no optional locks): a file only touched is
    // not a change, and a build never writes to the repository.
    let dirty = git(dir, &["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

/// `"sha1": "…"` (and `"dirty": true`) from the `.cargo_vcs_info.json` that `cargo package` writes.
fn from_vcs_info(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let sha1 = text.split("\"sha1\"").nth(1)?.split('"').nth(1)?;
    let short: String = sha1.chars().take(7).collect();
    let dirty = text.contains("\"dirty\": true") || text.contains("\"dirty\":true");
    Some(if dirty { format!("{short}-dirty") } else { short })
}
