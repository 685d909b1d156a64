//! The namespace lab of scripts/lab.sh, as the lab tests use it: a fresh lab per test, named after
//! this process so parallel checkouts never collide, removed on drop. A lab test whose figures
//! depend on timing runs alone ([`one_lab_at_a_time`]): its figures must not depend on another
//! lab's traffic on the same vCPUs. A lab test that mostly waits (querier intervals, membership
//! ageing, ramps, scrapes) at a few dozen probes a second and asserts nothing finer than a
//! second may run beside one other such test ([`beside_another_waiting_lab`]): the suite's wall
//! time was the sum of every lab test's waits.
//! Everything lives in namespaces the lab creates; nothing is sent on the host's own interfaces.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// This process's lab prefix made from `base`.
pub fn prefix(base: &str) -> &'static str {
    Box::leak(format!("{base}{}", std::process::id() % 100_000).into_boxed_str())
}

/// Runs `lab.sh ARGS` on lab `prefix`; its stdout. Fails the test when it fails.
pub fn lab_in(prefix: &str, args: &[&str]) -> String {
    let out = Command::new(repo().join("scripts/lab.sh"))
        .env("LAB_PREFIX", prefix)
        .args(args)
        .output()
        .expect("scripts/lab.sh runs");
    assert!(
        out.status.success(),
        "lab.sh {args:?} exited with {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the lab even when an assertion fails.
pub struct Lab(pub &'static str);

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/lab.sh")).env("LAB_PREFIX", self.0).arg("down").status();
    }
}

/// The turns of the lab tests of one test binary: a timing test holds it alone, waiting tests
/// share it. Linux's std RwLock makes new readers wait behind a waiting writer, so a timing test
/// is not starved by a stream of waiting ones.
static LAB_TURNS: RwLock<()> = RwLock::new(());

/// A lab test's turn, held until the test ends.
pub enum Turn {
    // The guards are held for their Drop, never read.
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
}

/// The turn of a lab test that measures: no other lab test runs until it ends.
pub fn one_lab_at_a_time() -> Turn {
    Turn::Alone(LAB_TURNS.write().unwrap_or_else(|e| e.into_inner()))
}

/// The turn of a lab test that mostly waits (see the module's comment): it runs beside other
/// waiting tests (at most as many as the test threads), never beside one that measures.
pub fn beside_another_waiting_lab() -> Turn {
    Turn::Shared(LAB_TURNS.read().unwrap_or_else(|e| e.into_inner()))
}

/// True as root with every package the lab needs; otherwise skips (one line naming what is
/// missing; a failure under MCPROBE_REQUIRE_ALL=1). Never installs: `sudo scripts/lab.sh
/// require` or `sudo scripts/test.sh` does.
pub fn root_or_skip() -> bool {
    super::root_or_skip_for("the namespace lab") && lab_packages_or_skip()
}

/// True when `lab.sh missing` names no package; otherwise skips naming them.
fn lab_packages_or_skip() -> bool {
    let out = Command::new(repo().join("scripts/lab.sh")).arg("missing").output().expect("scripts/lab.sh runs");
    assert!(out.status.success(), "lab.sh missing: {}", String::from_utf8_lossy(&out.stderr));
    let missing: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
    missing.is_empty()
        || super::skip_or_fail(&format!(
            "the namespace lab needs the Debian packages {} (sudo scripts/lab.sh require, or sudo scripts/test.sh)",
            missing.join(" ")
        ))
}

/// True when lab `prefix` (up) can emulate a delay: netem, or br_netfilter loaded, which this
/// suite never loads itself; otherwise skips with what is missing.
pub fn delay_or_skip(prefix: &str) -> bool {
    let answer = lab_in(prefix, &["can-delay"]);
    answer.trim() == "yes" || super::skip_or_fail(&format!("the lab cannot emulate a delay: {}", answer.trim()))
}

/// A fresh lab of `hosts` hosts for a test that measures (it runs alone), its prefix made from
/// `base`, removed when the first element drops; the second holds this test's turn. `None`,
/// with the reason printed, when not root or a package the lab needs is missing.
pub fn fresh_lab(base: &str, hosts: u32) -> Option<(Lab, Turn, &'static str)> {
    lab_with_turn(base, hosts, one_lab_at_a_time)
}

/// As [`fresh_lab`], for a test that mostly waits: it may run beside another such test.
pub fn fresh_waiting_lab(base: &str, hosts: u32) -> Option<(Lab, Turn, &'static str)> {
    lab_with_turn(base, hosts, beside_another_waiting_lab)
}

fn lab_with_turn(base: &str, hosts: u32, turn: fn() -> Turn) -> Option<(Lab, Turn, &'static str)> {
    if !root_or_skip() {
        return None;
    }
    let turn = turn();
    let p = prefix(base);
    let _ = Command::new(repo().join("scripts/lab.sh")).env("LAB_PREFIX", p).arg("down").status();
    lab_in(p, &["up", &hosts.to_string()]);
    Some((Lab(p), turn, p))
}

/// `mcprobe` inside namespace `PREFIX-h` (a lab host `hN`, or `br` for the bridge).
pub fn in_lab_host(prefix: &str, h: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &format!("{prefix}-{h}"), env!("CARGO_BIN_EXE_mcprobe")]);
    c
}

/// Loads an nftables ruleset into namespace `PREFIX-ns` (several lines: this nft rejects
/// one-line tables).
pub fn nft_in(prefix: &str, ns: &str, ruleset: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-{ns}"), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft runs");
    child.stdin.take().unwrap().write_all(ruleset.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "nft -f in {prefix}-{ns}:\n{ruleset}");
}

/// Runs `f` on a thread that lives in network namespace `ns`: the sockets it makes (and the
/// prober's threads it spawns) are that namespace's.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
            // SAFETY: setns on a valid descriptor; it changes only this thread's namespace.
            let rc = unsafe { nix::libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), nix::libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    })
}
