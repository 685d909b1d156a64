#!/usr/bin/env bash
# release.sh - the portable x86-64 Linux binary: built against glibc 2.17 (RHEL 7 and later,
# Ubuntu 14.04 and later) with cargo-zigbuild and zig, then checked.
#
#   scripts/release.sh            # writes target/dist/mcprobe-<version>-x86_64-linux-gnu (+ .sha256)
#
# Checks, failing the script if any fails:
#   1. the highest GLIBC_ symbol version the binary needs (objdump -T) is at most $GLIBC;
#   2. the binary runs: --version names the version and commit, respond --help;
#   3. `mcprobe demo` on loopback only (responders on 127.0.0.2.., the prober on 127.0.0.1,
#      TTL 1): 3 responders answer every probe, exit 0;
#   4. MCPROBE_BIN=<it> cargo test --test it loopback:: plain::: the loopback integration tests
#      run against the portable binary instead of the one cargo built.
#
# Needs: cargo-zigbuild (installed when missing: its PyPI wheel, else crates.io) and
# zig (PyPI `ziglang`; installed with pip when missing), objdump (binutils).
# Environment: GLIBC [2.17]  RELEASE_NO_INSTALL=1 (fail instead of installing)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
GLIBC=${GLIBC:-2.17}
TARGET=x86_64-unknown-linux-gnu
say() { echo "release.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

# --- tools -------------------------------------------------------------------------------------
if ! command -v cargo-zigbuild >/dev/null; then
    [[ ${RELEASE_NO_INSTALL:-0} == 1 ]] && die "cargo-zigbuild is missing (python3 -m pip install cargo-zigbuild, or cargo install --locked cargo-zigbuild)"
    # Its author's prebuilt wheel on PyPI installs in seconds; building it from crates.io took
    # 406 s on a loaded 2-vCPU CI machine. crates.io is the fallback.
    say "installing cargo-zigbuild (python3 -m pip install cargo-zigbuild)"
    python3 -m pip install --quiet cargo-zigbuild 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages cargo-zigbuild 2>/dev/null ||
        cargo install --locked --quiet cargo-zigbuild
    hash -r
fi
if ! command -v zig >/dev/null && ! python3 -c 'import ziglang' 2>/dev/null; then
    [[ ${RELEASE_NO_INSTALL:-0} == 1 ]] && die "zig is missing (python3 -m pip install ziglang)"
    say "installing zig (python3 -m pip install ziglang)"
    python3 -m pip install --quiet ziglang 2>/dev/null || python3 -m pip install --quiet --break-system-packages ziglang
fi
command -v objdump >/dev/null || die "objdump is missing (Debian package binutils)"

# --- build -------------------------------------------------------------------------------------
say "building for $TARGET with glibc $GLIBC (cargo zigbuild --release)"
cargo zigbuild --release --locked --target "$TARGET.$GLIBC"
BIN=target/$TARGET/release/mcprobe
[[ -x $BIN ]] || die "no binary at $BIN"

# --- 1: glibc symbol versions --------------------------------------------------------------------
# Dynamic symbols look like "... GLIBC_2.14  memcpy": the highest version is the glibc it needs.
highest=$(objdump -T "$BIN" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
[[ -n $highest ]] || die "objdump -T found no GLIBC_ symbol versions in $BIN (not dynamically linked against glibc?)"
newest_ok=$(printf '%s\n%s\n' "$highest" "$GLIBC" | sort -V | tail -n1)
[[ $newest_ok == "$GLIBC" ]] || {
    objdump -T "$BIN" | grep "GLIBC_$highest" >&2
    die "$BIN needs GLIBC_$highest, above $GLIBC"
}
say "glibc: the highest symbol version needed is GLIBC_$highest (at most $GLIBC: ok)"
interp=$(objdump -sj .interp "$BIN" 2>/dev/null | sed -n 's/.*\(\/lib.*ld-linux[^.]*\.so\.[0-9]\).*/\1/p' | head -n1 || true)
[[ -z $interp ]] || say "interpreter: $interp"

# --- 2, 3, 4: the binary's own checks -----------------------------------------------------------------
version=$("$BIN" --version)
pkg_version=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["packages"][0]["version"])')
[[ $version == "mcprobe $pkg_version ("*")" ]] || die "--version says '$version'"
help=$("$BIN" respond --help)
grep -q -- "--iface" <<<"$help" || die "respond --help does not mention --iface"
say "runs: $version; respond --help ok"

demo_dir=$(mktemp -d)
trap 'rm -rf "$demo_dir"' EXIT
# Loopback only: demo's responders answer from 127.0.0.2.., its prober sends on 127.0.0.1, TTL 1.
timeout 60 "$BIN" demo --responders 3 --duration 2s --out "$demo_dir/report" --quiet >"$demo_dir/table.txt" ||
    { cat "$demo_dir/table.txt" >&2; die "mcprobe demo failed"; }
answered=$(python3 -c 'import csv,sys; rows=list(csv.DictReader(open(sys.argv[1]))); print(sum(1 for r in rows if int(r["received"]) > 0 and int(r["lost"]) == 0))' "$demo_dir/report/summary.csv")
[[ $answered == 3 ]] || { cat "$demo_dir/table.txt" >&2; die "demo: $answered of 3 responders answered every probe"; }
say "demo on loopback: 3 of 3 responders answered every probe"

say "integration tests against the portable binary: MCPROBE_BIN=$BIN cargo test --test it loopback:: plain:: version::"
MCPROBE_BIN=$ROOT/$BIN cargo test --locked --quiet --test it -- loopback:: plain:: version::

mkdir -p target/dist
out=target/dist/mcprobe-$pkg_version-x86_64-linux-gnu
cp "$BIN" "$out"
(cd target/dist && sha256sum "$(basename "$out")" >"$(basename "$out").sha256")
say "wrote $out ($(stat -c %s "$out") bytes, glibc >= $highest) and its .sha256"
