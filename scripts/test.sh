#!/usr/bin/env bash
# test.sh - set this machine up for every test of mcprobe, then run them all.
#
#   sudo scripts/test.sh                 # or scripts/test.sh as root; extra arguments go to cargo test
#   sudo scripts/test.sh --test it lab_  # e.g. only the lab tests
#   sudo scripts/test.sh --setup         # only the set-up below, no tests
#
# It says what it installs before it installs it, and installs only what is missing:
#   Debian packages  iproute2 nftables iptables kmod iputils-ping util-linux python3 python3-pip
#                      (the namespace lab, scripts/lab.sh)
#                    ffmpeg tcpdump (watch's lab tests) smcroute (the router lab case)
#                    prometheus (prometheus, promtool) openssl systemd (systemd-analyze)
#                    chromium (the report in a real browser) faketime (the clock-step test)
#   PyPI             hdrhistogram (the independent HdrHistogram reader of tests/py/check_hdr.py)
#                    ruff (the Python lint of scripts/ and tests/py/)
#   kernel module    br_netfilter, where it is a module and the kernel has no netem (the lab's
#                    delay without netem); nothing else is loaded
# then runs `cargo test` with MCPROBE_REQUIRE_ALL=1: a test that would skip for want of root,
# a tool or a kernel feature FAILS instead, so a green run means every test ran; the one
# exception is a kernel built without multicast routing (CONFIG_IP_MROUTE), which nothing here
# can install: the router case then prints "skipped: ..." and passes.
#
# Plain `cargo test` installs nothing and loads nothing: such tests skip with one line naming
# the package. TEST_NO_INSTALL=1 checks and runs without installing (fails if anything is
# missing).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

say() { echo "test.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "needs root (it installs packages, and the lab tests build network namespaces): sudo scripts/test.sh"

# Under sudo, root's PATH may lack the invoking user's cargo: use that user's toolchain.
if ! command -v cargo >/dev/null && [[ -n ${SUDO_USER:-} ]]; then
    user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    if [[ -x $user_home/.cargo/bin/cargo ]]; then
        export PATH="$user_home/.cargo/bin:$PATH" CARGO_HOME=${CARGO_HOME:-$user_home/.cargo} \
            RUSTUP_HOME=${RUSTUP_HOME:-$user_home/.rustup}
        say "using $SUDO_USER's cargo ($user_home/.cargo/bin)"
    fi
fi
command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs), or not on root's PATH"

# --- Debian packages: the command each test uses, and the package that brings it ----------------
declare -A pkg_of=(
    [ip]=iproute2 [tc]=iproute2 [nft]=nftables [iptables]=iptables [modprobe]=kmod [ping]=iputils-ping
    [flock]=util-linux [python3]=python3 [ffmpeg]=ffmpeg [tcpdump]=tcpdump [smcrouted]=smcroute
    [prometheus]=prometheus [promtool]=prometheus [openssl]=openssl [systemd-analyze]=systemd
    [chromium]=chromium [faketime]=faketime [setpriv]=util-linux
)
missing=()
for cmd in "${!pkg_of[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_of[$cmd]}")
done
# pip for the Python packages below, if the python3 on PATH has none.
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    [[ ${TEST_NO_INSTALL:-0} == 1 ]] && die "missing Debian packages: ${missing[*]} (TEST_NO_INSTALL=1)"
    command -v apt-get >/dev/null || die "missing Debian packages: ${missing[*]}, and this is no Debian-like system (no apt-get)"
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    say "Debian packages: all there"
fi

# --- PyPI packages, into the python3 on PATH (the one the tests run) ---------------------------------
pip_missing=()
python3 -c 'import hdrh' 2>/dev/null || pip_missing+=(hdrhistogram)
command -v ruff >/dev/null || pip_missing+=(ruff)
if ((${#pip_missing[@]})); then
    [[ ${TEST_NO_INSTALL:-0} == 1 ]] && die "missing Python packages: ${pip_missing[*]} (TEST_NO_INSTALL=1)"
    say "installing Python packages (pip): ${pip_missing[*]}"
    # Debian's own python3 refuses pip installs unless told (PEP 668): these two are leaf packages.
    python3 -m pip install --quiet "${pip_missing[@]}" 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages "${pip_missing[@]}"
else
    say "Python packages: all there"
fi

# --- kernel: the lab's delay needs netem or br_netfilter ------------------------------------------
if [[ ! -d /proc/sys/net/bridge ]]; then
    say "loading kernel module br_netfilter (the lab's delay where the kernel has no netem)"
    modprobe br_netfilter || say "br_netfilter cannot be loaded: the lab's delay test will fail unless the kernel has netem"
fi

# --- the tests -------------------------------------------------------------------------------------
if [[ ${1:-} == --setup ]]; then
    say "set up; run the tests with: sudo scripts/test.sh"
    exit 0
fi
say "running: MCPROBE_REQUIRE_ALL=1 cargo test $*"
export MCPROBE_REQUIRE_ALL=1
exec cargo test "$@"
