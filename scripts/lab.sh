#!/usr/bin/env bash
# lab.sh - an impaired multicast LAN built from network namespaces, for mcprobe tests.
#
# Needs root and these Debian packages (`lab.sh require` installs missing ones; nothing
# else here installs anything: `up` stops with the list of what is missing):
#   iproute2      ip, tc               namespaces, veth, bridge, netem
#   nftables      nft                  loss + counters when there is no netem
#   iptables      iptables, ip6tables  NFQUEUE + physdev match for delay without netem
#   kmod          modprobe             loading br_netfilter where it is a module
#   iputils-ping  ping                 connectivity checks
#   python3       python3 (stdlib)     scripts/lab/nfq_delay.py, scripts/lab/labnet.py
#
# Safety: nothing is created in the root namespace.  The bridge, every veth, every
# address, route, qdisc, nft table and iptables rule lives in namespaces this script
# creates (<prefix>-br and <prefix>-h1..hN) and goes away with them on `down`.
# The only root-namespace state touched is the state directory. Delay without netem needs
# br_netfilter, which only `lab.sh require` (and scripts/test.sh) loads: `up` never loads
# a module; `lab.sh can-delay` says whether a delay can be emulated here.
#
# Layout of a lab with prefix P (LAB_PREFIX, default mcl):
#   P-br   bridge namespace: br0 with ports p1..pN
#   P-hI   host I: veth0 (peer of pI), 10.77.0.I/24, fd77::I/64, lo up,
#          route 224.0.0.0/4 dev veth0
#
# Where impairments sit (DIR is seen from the host; all before the receiver's
# kernel takes its receive timestamps):
#   kernel with netem:  egress  -> netem qdisc on hI's veth0
#                       ingress -> netem qdisc on pI (bridge side) in P-br
#   kernel without it:  loss  -> nft netdev table on pI in P-br, numgen random,
#                                with `seen` and `dropped` counters
#                       delay -> P-br FORWARD (br_netfilter), iptables physdev
#                                --physdev-in pI (egress) / --physdev-out pI
#                                (ingress) -j NFQUEUE, held by lab/nfq_delay.py
#   The userspace hop is not free (~0.1 ms with the Python delayer on a 2-vCPU
#   VM): `lab.sh calibrate` measures it; correct measured delays for it.
# Run `lab.sh help` for the commands.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

LAB_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELPERS="$LAB_HOME/lab"
PREFIX=${LAB_PREFIX:-mcl}
SUBNET=${LAB_SUBNET:-10.77.0}            # IPv4 /24, host I gets .I
SUBNET6=${LAB_SUBNET6:-fd77:}            # IPv6 /64, host I gets fd77::I
STATE_ROOT=${LAB_STATE_DIR:-/run/mcprobe-lab}
IMPAIR_MODE=${LAB_IMPAIR:-auto}          # auto | netem | nft
HOST_IF=veth0
# /usr/bin/python3 starts faster than a pyenv shim and exists on CI images. (Not
# `command -v A B | head -n1`: head's early exit can kill the writer with SIGPIPE, which
# pipefail and set -e turn into a silent exit 141 of the whole script, now and then.)
PY=${LAB_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}

usage() {
    cat <<EOF
usage: lab.sh [--prefix P] COMMAND ...

  up N [--querier] [--trunk K]
                          build an N-host LAN (N <= 250); --querier makes the bridge
                          an IGMP querier so snooping really filters; --trunk K puts
                          hosts K+1..N on a second bridge br1, joined to br0 by a
                          veth pair t0-t1 (the trunk), both in the bridge namespace
  trunk loss PCT [down|up] | trunk clear | trunk counters [down|up]
                          loss on the trunk: down = frames from br0 towards br1
                          (probes to the hosts behind it), up = the other way
  down                    remove everything this prefix created (idempotent)
  querier on|off [--interval S] [--igmp 2|3] [--mld 1|2]
                          make the bridge an IGMP and MLD querier (or stop it): general
                          queries every S seconds (default 125), of these versions
                          (default IGMPv3, MLDv2); br0 gets an IPv6 link-local address,
                          which MLD queries need as their source; memberships age
                          out after 2 x S + 1 seconds, as the queries announce
  querier hide|show HOST  drop the queries towards HOST (or stop dropping them): it
                          stops reporting, so the bridge drops its membership
  impair HOST DIR [--delay MS] [--jitter MS] [--loss PCT]
                          DIR is egress (what HOST sends) or ingress (what it
                          receives); replaces any earlier impairment on HOST DIR;
                          with no option it just clears it
  clear HOST DIR | clear all
  counters HOST DIR       one line: mode=.. dropped=.. seen=.. [delayer stats]
  calibrate [FROM TO] [--count N] [--delay MS]
                          measure the emulator's own cost with a UDP ping
  exec HOST CMD...        run CMD in HOST's namespace
  addr HOST [-6]          print HOST's address;  dev HOST  prints its interface
  ns HOST                 print HOST's namespace name
  status                  list hosts and impairments
  require                 apt-get install missing packages, load br_netfilter (the only
                          command that installs or loads anything)
  missing                 print the missing packages, one a line (nothing: all there)
  can-delay               "yes" if impair --delay works here, else what is missing
  selftest                up 4 hosts, ping, multicast, delay, loss, down (bounded)

HOST is hI, I or P-hI.  Environment: LAB_PREFIX (default mcl; labs with
different prefixes coexist), LAB_IMPAIR (auto|netem|nft), LAB_NO_INSTALL=1,
LAB_STATE_DIR (default /run/mcprobe-lab), LAB_SUBNET (default 10.77.0),
LAB_DELAY_SPIN_US (delayer busy-polls this long before a deadline, default 250).
EOF
}

die() { echo "lab.sh: error: $*" >&2; exit 1; }
log() { [[ ${LAB_QUIET:-0} == 1 ]] || echo "lab.sh: $*" >&2; }

# --- packages ------------------------------------------------------------------

# The packages this lab needs, by the command that each provides.
lab_missing_packages() { # prints the missing Debian packages, one a line (nothing when all are there)
    local -A pkg_of=([ip]=iproute2 [tc]=iproute2 [nft]=nftables [iptables]=iptables
                     [modprobe]=kmod [ping]=iputils-ping [python3]=python3 [flock]=util-linux)
    local cmd
    for cmd in "${!pkg_of[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || echo "${pkg_of[$cmd]}"
    done | sort -u
}

# `up` and the other commands: never install, say what is missing and how to get it.
lab_check() {
    local missing
    missing=$(lab_missing_packages | tr '\n' ' ')
    [[ -z $missing ]] || die "missing packages: ${missing% } (install them with: sudo scripts/lab.sh require, or sudo scripts/test.sh)"
}

# `lab.sh require`: the explicit installer (scripts/test.sh calls it). Installs the missing
# packages with apt-get and loads br_netfilter where it is a module (delay without netem).
lab_require() {
    local missing=()
    mapfile -t missing < <(lab_missing_packages)
    if [[ ${#missing[@]} -gt 0 ]]; then
        [[ ${LAB_NO_INSTALL:-0} == 1 ]] && die "missing packages: ${missing[*]} (LAB_NO_INSTALL=1)"
        command -v apt-get >/dev/null || die "missing packages: ${missing[*]} and no apt-get"
        log "installing: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
        PY=${LAB_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
    fi
    if [[ ! -d /proc/sys/net/bridge ]]; then
        if modprobe br_netfilter 2>/dev/null; then
            log "loaded br_netfilter (delay without netem needs it; it stays loaded)"
        else
            log "br_netfilter cannot be loaded: delay without netem will not work (lab.sh can-delay)"
        fi
    fi
}

# Can this lab emulate a delay? netem, or (without it) br_netfilter already loaded.
# Prints "yes", or one line saying what is missing; exit 0 either way.
cmd_can_delay() {
    require_up
    if [[ $IMPAIR_MODE != nft ]] && netem_available; then echo yes; return; fi
    [[ $IMPAIR_MODE == netem ]] && { echo "LAB_IMPAIR=netem but this kernel has no netem"; return; }
    if [[ -d /proc/sys/net/bridge ]]; then echo yes; return; fi
    echo "this kernel has no netem and br_netfilter is not loaded (modprobe br_netfilter, or sudo scripts/test.sh)"
}

# --- names and state -----------------------------------------------------------

BR_NS="$PREFIX-br"
STATE="$STATE_ROOT/$PREFIX"

check_prefix() {
    [[ $PREFIX =~ ^[a-z][a-z0-9]{0,9}$ ]] || die "bad prefix '$PREFIX' (a-z0-9, at most 10 chars)"
}
need_root() { [[ $(id -u) == 0 ]] || die "must run as root"; }

# Serialize commands that change a lab (parallel tests may share a prefix).
take_lock() {
    mkdir -p "$STATE_ROOT"
    exec 9>"$STATE_ROOT/$PREFIX.lock"
    flock -w 60 9 || die "timed out waiting for the lock on lab '$PREFIX'"
}

# awk reads all its input: `grep -q` would stop early and SIGPIPE the writer (see PY above).
ns_exists() { ip netns list | awk -v n="$1" '$1 == n { found = 1 } END { exit !found }'; }
require_up() {
    [[ -f $STATE/n ]] && ns_exists "$BR_NS" || die "lab '$PREFIX' is not up (run: lab.sh up N)"
    NHOSTS=$(<"$STATE/n")
}

# host_index HOST -> I (accepts hI, I, PREFIX-hI)
host_index() {
    local h=$1 i
    h=${h#"$PREFIX"-}; i=${h#h}
    [[ $i =~ ^[1-9][0-9]*$ ]] || die "bad host '$1' (use h1..h$NHOSTS)"
    (( i <= NHOSTS )) || die "no host '$1' in lab '$PREFIX' (it has h1..h$NHOSTS)"
    echo "$i"
}
host_ns() { echo "$PREFIX-h$1"; }
check_dir() { [[ $1 == egress || $1 == ingress ]] || die "DIR must be egress or ingress, not '$1'"; }

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# Write a sysctl inside a namespace without needing procps.
ns_sysctl() { in_ns "$1" sh -c "echo $3 > /proc/sys/$2"; }

# --- up ------------------------------------------------------------------------

cmd_up() {
    local n=${1:-} querier=0 trunk=0
    [[ $n =~ ^[0-9]+$ ]] && (( n >= 1 && n <= 250 )) || die "usage: lab.sh up N [--querier] [--trunk K] (1 <= N <= 250)"
    shift
    while [[ $# -gt 0 ]]; do
        case $1 in
            --querier) querier=1 ;;
            --trunk)
                [[ ${2:-} =~ ^[0-9]+$ ]] && (( $2 >= 1 && $2 < n )) || die "--trunk K needs 1 <= K < N"
                trunk=$2; shift ;;
            *) die "unknown option to up: $1" ;;
        esac
        shift
    done
    need_root
    lab_check
    take_lock
    ns_exists "$BR_NS" && die "lab '$PREFIX' is already up (run: lab.sh down)"
    rm -rf "$STATE"; mkdir -p "$STATE"
    echo "$n" >"$STATE/n"; NHOSTS=$n
    echo "$querier" >"$STATE/querier"
    # If anything below fails, take down what was built so far.
    trap 'rc=$?; if [[ $rc != 0 ]]; then log "up failed, cleaning up"; do_down; fi' EXIT

    ip netns add "$BR_NS"
    # The bridge namespace only switches frames: no IPv6 on its own interfaces,
    # so it sends no router solicitations or MLD reports into the LAN.
    ns_sysctl "$BR_NS" net/ipv6/conf/default/disable_ipv6 1
    ns_sysctl "$BR_NS" net/ipv6/conf/all/disable_ipv6 1
    # br_netfilter's switches are per-namespace since Linux 5.3 and default to on:
    # turn them off here so bridged traffic skips iptables until a delay needs it
    # (then only this bridge is switched on, see brnf_bridge).
    if [[ -d /proc/sys/net/bridge ]] && kernel_at_least 5 3; then
        local f
        for f in iptables ip6tables arptables; do
            ns_sysctl "$BR_NS" net/bridge/bridge-nf-call-$f 0
        done
    fi
    ip -n "$BR_NS" link set lo up
    # Short query response interval first, querier second (see LAB-NOTES):
    # the other order keeps flooding for ~10 s.
    ip -n "$BR_NS" link add br0 type bridge mcast_snooping 1 mcast_query_response_interval 100
    echo "$trunk" >"$STATE/trunk"
    if (( trunk > 0 )); then
        # A second switch, behind a trunk: both ends of the trunk stay in the bridge namespace.
        ip -n "$BR_NS" link add br1 type bridge mcast_snooping 1 mcast_query_response_interval 100
        ip -n "$BR_NS" link add t0 type veth peer name t1
        ip -n "$BR_NS" link set t0 master br0 up
        ip -n "$BR_NS" link set t1 master br1 up
        ip -n "$BR_NS" link set br1 up
    fi

    local i hns
    for (( i = 1; i <= n; i++ )); do
        hns=$(host_ns "$i")
        ip netns add "$hns"
        # No duplicate address detection: addresses are usable at once.
        ns_sysctl "$hns" net/ipv6/conf/default/accept_dad 0
        # The pair is created inside the bridge namespace and its peer is born
        # in the host namespace: no interface ever exists in the root namespace.
        ip -n "$BR_NS" link add "p$i" type veth peer name "$HOST_IF" netns "$hns"
        local br=br0
        (( trunk > 0 && i > trunk )) && br=br1
        ip -n "$BR_NS" link set "p$i" master "$br" up
        ip -n "$hns" link set lo up
        ip -n "$hns" addr add "$SUBNET.$i/24" dev "$HOST_IF"
        ip -n "$hns" -6 addr add "$SUBNET6:$i/64" dev "$HOST_IF" nodad
        ip -n "$hns" link set "$HOST_IF" up
        ip -n "$hns" route add 224.0.0.0/4 dev "$HOST_IF"
    done
    ip -n "$BR_NS" link set br0 up
    [[ $querier == 1 ]] && ip -n "$BR_NS" link set br0 type bridge mcast_querier 1
    trap - EXIT
    log "lab '$PREFIX' up: $n hosts $SUBNET.1-$n on $HOST_IF, bridge ns $BR_NS, querier=$querier"
}

kernel_at_least() {
    local maj min
    IFS=. read -r maj min _ <<<"$(uname -r)"
    (( maj > $1 || (maj == $1 && ${min%%[!0-9]*} >= $2) ))
}

# --- trunk ---------------------------------------------------------------------

# Loss on the trunk of `up --trunk K`: the same nft netdev table as a host's, on t1 (the br1
# end): its ingress hook sees frames going down (br0 -> br1), its egress hook those going up.
trunk_table() { echo "lab_trunk_$1"; }
cmd_trunk() {
    need_root; require_up
    [[ $(cat "$STATE/trunk" 2>/dev/null || echo 0) != 0 ]] || die "lab '$PREFIX' has no trunk (up N --trunk K)"
    local what=${1:-} dir hook n draw
    case $what in
        loss)
            [[ $# -ge 2 ]] && is_num "$2" || die "usage: lab.sh trunk loss PCT [down|up]"
            dir=${3:-down}; [[ $dir == down || $dir == up ]] || die "trunk direction must be down or up"
            take_lock
            hook=ingress; [[ $dir == up ]] && hook=egress
            in_ns "$BR_NS" nft delete table netdev "$(trunk_table "$dir")" 2>/dev/null || true
            n=$(awk -v p="$2" 'BEGIN { printf "%d", p * 10000 + 0.5 }')
            draw="numgen random mod 1000000 < $n"
            (( n >= 1000000 )) && draw=""
            in_ns "$BR_NS" nft -f - <<EOF
table netdev $(trunk_table "$dir") {
    counter seen {}
    counter dropped {}
    chain impair {
        type filter hook $hook device "t1" priority 0; policy accept;
        meta protocol ip6 meta l4proto ipv6-icmp accept
        meta protocol { ip, ip6 } counter name "seen"
        meta protocol { ip, ip6 } $draw counter name "dropped" drop
    }
}
EOF
            log "lab '$PREFIX': trunk loses $2 % going $dir" ;;
        clear)
            take_lock
            for dir in down up; do in_ns "$BR_NS" nft delete table netdev "$(trunk_table "$dir")" 2>/dev/null || true; done ;;
        counters)
            dir=${2:-down}
            local c out="dir=$dir"
            for c in dropped seen; do
                out+=" $c=$(in_ns "$BR_NS" nft list counter netdev "$(trunk_table "$dir")" "$c" 2>/dev/null |
                    awk '/packets/ { for (k = 1; k < NF; k++) if ($k == "packets") print $(k+1) }')"
            done
            echo "$out" ;;
        *) die "usage: lab.sh trunk loss PCT [down|up] | trunk clear | trunk counters [down|up]" ;;
    esac
}

# --- querier -------------------------------------------------------------------

cmd_querier() {
    local mode=${1:-} interval=125 igmp=3 mld=2
    if [[ $mode == hide || $mode == show ]]; then
        [[ $# -eq 2 ]] || die "usage: lab.sh querier hide|show HOST"
        need_root; require_up; take_lock
        local i; i=$(host_index "$2")
        in_ns "$BR_NS" nft delete table netdev "lab_hide_h$i" 2>/dev/null || true
        [[ $mode == show ]] && { log "lab '$PREFIX': h$i hears queries again"; return 0; }
        # Queries towards the host dropped on its bridge port: it stops reporting, and the
        # bridge ages its membership out while the others' stay.
        in_ns "$BR_NS" nft -f - <<EOF
table netdev lab_hide_h$i {
    chain hide {
        type filter hook egress device "p$i" priority 0; policy accept;
        meta protocol ip ip protocol igmp @th,0,8 0x11 drop
        meta protocol ip6 icmpv6 type mld-listener-query drop
    }
}
EOF
        log "lab '$PREFIX': h$i hears no membership query"
        return 0
    fi
    [[ $mode == on || $mode == off ]] || die "usage: lab.sh querier on|off [--interval S] [--igmp 2|3] [--mld 1|2] | querier hide|show HOST"
    shift
    while [[ $# -gt 0 ]]; do
        [[ $# -ge 2 ]] || die "querier: $1 needs a value"
        case $1 in
            --interval) interval=$2 ;;
            --igmp) igmp=$2 ;;
            --mld) mld=$2 ;;
            *) die "unknown option to querier: $1" ;;
        esac
        shift 2
    done
    [[ $interval =~ ^[0-9]+$ ]] && (( interval >= 1 && interval <= 3600 )) || die "--interval must be 1..3600 seconds"
    [[ $igmp == 2 || $igmp == 3 ]] || die "--igmp must be 2 or 3"
    [[ $mld == 1 || $mld == 2 ]] || die "--mld must be 1 or 2"
    need_root; require_up; take_lock
    if [[ $mode == off ]]; then
        ip -n "$BR_NS" link set br0 type bridge mcast_querier 0
        echo 0 >"$STATE/querier"
        log "lab '$PREFIX': querier off"
        return 0
    fi
    # Settings first, querier last (see up): the bridge then sends startup queries a quarter
    # of the interval apart, then one every interval (the bridge counts in centiseconds).
    ip -n "$BR_NS" link set br0 type bridge mcast_querier 0
    # Memberships age out as the queries announce: robustness 2 x interval + response (1 s).
    ip -n "$BR_NS" link set br0 type bridge mcast_igmp_version "$igmp" mcast_mld_version "$mld" \
        mcast_query_interval $(( interval * 100 )) mcast_startup_query_interval $(( interval * 25 )) \
        mcast_membership_interval $(( (2 * interval + 1) * 100 ))
    ns_sysctl "$BR_NS" net/ipv6/conf/br0/disable_ipv6 0
    ip -n "$BR_NS" link set br0 type bridge mcast_querier 1
    echo 1 >"$STATE/querier"
    log "lab '$PREFIX': querier on, IGMPv$igmp and MLDv$mld every ${interval}s"
}

# --- down ----------------------------------------------------------------------

# Terminate a delayer by pid, but only if that pid still is our delayer.
stop_pid() {
    local pid=$1 t
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    grep -qs nfq_delay "/proc/$pid/cmdline" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for t in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

do_down() {
    local f ns pids found=0
    for f in "$STATE"/*.pid; do
        [[ -e $f ]] && stop_pid "$(<"$f")"
    done
    # Every namespace of this prefix, also ones left by a crashed run.
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^$PREFIX-(br|h[0-9]+)\$" || true); do
        found=1
        # Processes started in the lab (lab.sh exec ... &) would keep it alive.
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        if [[ -n $pids ]]; then
            kill -TERM $pids 2>/dev/null || true
            sleep 0.3
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
            [[ -n $pids ]] && kill -KILL $pids 2>/dev/null || true
        fi
        ip netns del "$ns"
    done
    rm -rf "$STATE"
    # The lock file stays: unlinking a lock that another lab.sh may be waiting on would let a
    # newcomer lock a different file, and flock would no longer keep them apart.
    [[ $found == 1 ]] && log "lab '$PREFIX' removed" || log "lab '$PREFIX': nothing to remove"
}

cmd_down() { need_root; take_lock; do_down; }

# --- impairments ---------------------------------------------------------------

# Does this kernel have netem?  Probed once per lab with a throw-away qdisc on
# the bridge namespace's br0 (never in the root namespace).
netem_available() {
    if [[ ! -f $STATE/netem ]]; then
        if tc -n "$BR_NS" qdisc add dev br0 root netem delay 0ms 2>/dev/null; then
            tc -n "$BR_NS" qdisc del dev br0 root 2>/dev/null || true
            echo yes >"$STATE/netem"
        else
            echo no >"$STATE/netem"
        fi
    fi
    [[ $(<"$STATE/netem") == yes ]]
}

impair_mode() {
    case $IMPAIR_MODE in
        netem) netem_available || die "LAB_IMPAIR=netem but this kernel has no netem"; echo netem ;;
        nft) echo nft ;;
        auto) if netem_available; then echo netem; else echo nft; fi ;;
        *) die "LAB_IMPAIR must be auto, netem or nft" ;;
    esac
}

# Where a netem qdisc goes: egress on the host's veth0 (its transmit side);
# ingress on the bridge port towards the host, so the delay happens before the
# host's kernel takes its receive timestamp.
netem_target() { # I DIR -> "NS DEV"
    if [[ $2 == egress ]]; then echo "$(host_ns "$1") $HOST_IF"; else echo "$BR_NS p$1"; fi
}

# NFQUEUE numbers are per network namespace, so labs never collide.
queue_num() { if [[ $2 == ingress ]]; then echo $(( $1 * 2 + 1 )); else echo $(( $1 * 2 )); fi; }
# physdev match: egress = frames entering the bridge from pI, ingress = leaving to pI.
physdev_match() { if [[ $2 == egress ]]; then echo "--physdev-in p$1"; else echo "--physdev-out p$1"; fi; }

# Delay without netem is done in the bridge namespace's FORWARD chain, which
# bridged frames only traverse with br_netfilter and nf_call_iptables on.
brnf_ensure() {
    [[ -d /proc/sys/net/bridge ]] || die "delay without netem needs br_netfilter, which is not loaded (lab.sh never loads it: run modprobe br_netfilter, sudo scripts/lab.sh require, or sudo scripts/test.sh)"
}
brnf_bridge() { # on|off: per-bridge switch, affects only this lab's br0
    local v=0
    [[ $1 == on ]] && v=1
    ip -n "$BR_NS" link set br0 type bridge nf_call_iptables "$v" nf_call_ip6tables "$v"
}

iptables_cmds() { # the iptables variants to program: IPv4 always, IPv6 if present
    echo iptables
    command -v ip6tables >/dev/null 2>&1 && echo ip6tables || true
}

start_delayer() { # I DIR DELAY JITTER
    local i=$1 dir=$2 q tag rdy pid t ipt
    q=$(queue_num "$i" "$dir"); tag="h$i.$dir"; rdy="$STATE/$tag.ready"
    brnf_ensure
    rm -f "$rdy"
    # setsid + redirections: the delayer outlives this script and holds neither
    # the caller's terminal or pipes nor our lock (fd 9) open.
    in_ns "$BR_NS" setsid "$PY" "$HELPERS/nfq_delay.py" --queue "$q" --delay "$3" --jitter "$4" \
        --spin-us "${LAB_DELAY_SPIN_US:-250}" --stats "$STATE/$tag.stats" --ready "$rdy" </dev/null >"$STATE/$tag.log" 2>&1 9>&- &
    for t in $(seq 100); do [[ -s $rdy ]] && break; sleep 0.05; done
    [[ -s $rdy ]] || { cat "$STATE/$tag.log" >&2; die "delayer for $tag did not start"; }
    pid=$(<"$rdy"); echo "$pid" >"$STATE/$tag.pid"
    brnf_bridge on
    # Only now queue packets: without a listener NFQUEUE would drop them.
    for ipt in $(iptables_cmds); do
        in_ns "$BR_NS" "$ipt" -w -A FORWARD -m physdev $(physdev_match "$i" "$dir") -j NFQUEUE --queue-num "$q"
    done
}

stop_delayer() { # I DIR
    local i=$1 dir=$2 tag="h$1.$2" ipt
    for ipt in $(iptables_cmds); do
        in_ns "$BR_NS" "$ipt" -w -D FORWARD -m physdev $(physdev_match "$i" "$dir") \
            -j NFQUEUE --queue-num "$(queue_num "$i" "$dir")" 2>/dev/null || true
    done
    [[ -f $STATE/$tag.pid ]] && stop_pid "$(<"$STATE/$tag.pid")"
    rm -f "$STATE/$tag.pid" "$STATE/$tag.ready"
    # Last delay gone: let bridged traffic skip iptables again.
    compgen -G "$STATE/*.pid" >/dev/null || brnf_bridge off 2>/dev/null || true
}

# Loss without netem: an nftables netdev table on the bridge-side end pI of the
# host's veth pair, in the bridge namespace.  "egress" (what the host sends) is
# pI's ingress hook, "ingress" (what the host receives) is pI's egress hook.
# Not on the host's own veth0: a drop in veth0's egress hook is reported to the
# sending socket as ENOBUFS (ping retries it, IP_RECVERR sockets see an error,
# UDP's SndbufErrors counts it), while a lossy link - and netem - is silent.
# A counter before the drop counts what was seen; the drop counter is the
# realized loss.  ICMPv6 is exempt: it carries neighbour discovery and MLD,
# which is what ARP is for IPv4 (and ARP is not matched either).
loss_table() { echo "lab_h$1_$2"; }
start_loss() { # I DIR PCT
    local n hook=ingress
    [[ $2 == ingress ]] && hook=egress
    n=$(awk -v p="$3" 'BEGIN { printf "%d", p * 10000 + 0.5 }')   # per million
    # numgen's values are 0..999999: total loss needs no random draw at all.
    local draw="numgen random mod 1000000 < $n"
    (( n >= 1000000 )) && draw=""
    in_ns "$BR_NS" nft -f - <<EOF
table netdev $(loss_table "$1" "$2") {
    counter seen {}
    counter dropped {}
    chain impair {
        type filter hook $hook device "p$1" priority 0; policy accept;
        meta protocol ip6 meta l4proto ipv6-icmp accept
        meta protocol { ip, ip6 } counter name "seen"
        meta protocol { ip, ip6 } $draw counter name "dropped" drop
    }
}
EOF
}
stop_loss() { in_ns "$BR_NS" nft delete table netdev "$(loss_table "$1" "$2")" 2>/dev/null || true; }
loss_counter() { # I DIR NAME -> packets
    in_ns "$BR_NS" nft list counter netdev "$(loss_table "$1" "$2")" "$3" |
        awk '/packets/ { for (k = 1; k < NF; k++) if ($k == "packets") print $(k+1) }'
}

clear_impairment() { # I DIR
    local i=$1 dir=$2 f="$STATE/h$1.$2.imp" ns dev
    [[ -f $f ]] || return 0
    # shellcheck disable=SC1090
    local mode delay jitter loss; source "$f"
    if [[ $mode == netem ]]; then
        read -r ns dev <<<"$(netem_target "$i" "$dir")"
        tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null || true
    else
        [[ -n $delay ]] && stop_delayer "$i" "$dir"
        [[ -n $loss ]] && stop_loss "$i" "$dir"
    fi
    rm -f "$f" "$STATE/h$i.$dir.stats" "$STATE/h$i.$dir.log"
}

is_num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }

cmd_impair() {
    [[ $# -ge 2 ]] || die "usage: lab.sh impair HOST DIR [--delay MS] [--jitter MS] [--loss PCT]"
    need_root; require_up
    local i dir=$2 delay="" jitter="" loss=""
    i=$(host_index "$1"); check_dir "$dir"; shift 2
    while [[ $# -gt 0 ]]; do
        [[ $# -ge 2 ]] || die "$1 needs a value"
        case $1 in
            --delay) delay=$2 ;;
            --jitter) jitter=$2 ;;
            --loss) loss=$2 ;;
            *) die "unknown impair option: $1" ;;
        esac
        is_num "$2" || die "$1 wants a non-negative number, not '$2'"
        shift 2
    done
    if [[ -n $loss ]] && ! awk -v p="$loss" 'BEGIN { exit !(p <= 100) }'; then
        die "--loss is a percentage (0-100)"
    fi
    [[ -n $jitter && -z $delay ]] && delay=0
    take_lock
    clear_impairment "$i" "$dir"
    if [[ -z $delay && -z $loss ]]; then log "h$i $dir: cleared"; return 0; fi

    local mode ns dev args=()
    mode=$(impair_mode)
    if [[ $mode == netem ]]; then
        read -r ns dev <<<"$(netem_target "$i" "$dir")"
        args=(limit 100000)   # default 1000 packets is too few for high rates x delay
        [[ -n $delay ]] && args+=(delay "${delay}ms" ${jitter:+"${jitter}ms"})
        [[ -n $loss ]] && args+=(loss "${loss}%")
        tc -n "$ns" qdisc replace dev "$dev" root netem "${args[@]}"
    else
        [[ -n $loss ]] && start_loss "$i" "$dir" "$loss"
        [[ -n $delay ]] && start_delayer "$i" "$dir" "$delay" "${jitter:-0}"
    fi
    printf 'mode=%s\ndelay=%s\njitter=%s\nloss=%s\n' "$mode" "$delay" "$jitter" "$loss" >"$STATE/h$i.$dir.imp"
    log "h$i $dir: mode=$mode${delay:+ delay=${delay}ms}${jitter:+ jitter=${jitter}ms}${loss:+ loss=${loss}%}"
}

cmd_clear() {
    need_root; require_up; take_lock
    local i dir
    if [[ ${1:-} == all ]]; then
        for (( i = 1; i <= NHOSTS; i++ )); do
            for dir in egress ingress; do clear_impairment "$i" "$dir"; done
        done
        return 0
    fi
    [[ $# -eq 2 ]] || die "usage: lab.sh clear HOST DIR | clear all"
    i=$(host_index "$1"); check_dir "$2"
    clear_impairment "$i" "$2"
}

# One machine-readable line of realized impairment figures.
cmd_counters() {
    [[ $# -eq 2 ]] || die "usage: lab.sh counters HOST DIR"
    need_root; require_up
    local i dir=$2 f mode delay jitter loss ns dev out dropped=0 seen=0 pkts
    i=$(host_index "$1"); check_dir "$dir"
    f="$STATE/h$i.$dir.imp"
    if [[ ! -f $f ]]; then echo "mode=none dropped=0 seen=0"; return 0; fi
    # shellcheck disable=SC1090
    source "$f"
    out="mode=$mode"
    if [[ $mode == netem ]]; then
        read -r ns dev <<<"$(netem_target "$i" "$dir")"
        # " Sent B bytes P pkt (dropped D, ...": netem counts what it let through and what it dropped.
        read -r pkts dropped < <(tc -s -n "$ns" qdisc show dev "$dev" |
            awk '/^ Sent/ { p=$4; d=$7; sub(",", "", d); print p, d; exit }')
        seen=$(( pkts + dropped ))
        out+=" dropped=$dropped seen=$seen"
    else
        if [[ -n $loss ]]; then
            dropped=$(loss_counter "$i" "$dir" dropped)
            seen=$(loss_counter "$i" "$dir" seen)
        fi
        out+=" dropped=$dropped seen=$seen"
        if [[ -n $delay && -f $STATE/h$i.$dir.pid ]]; then
            # Ask the delayer for fresh statistics, then append them.
            kill -USR1 "$(<"$STATE/h$i.$dir.pid")" 2>/dev/null && sleep 0.25
            [[ -f $STATE/h$i.$dir.stats ]] && \
                out+=" $(grep -Ev '^(delay_ms|jitter_ms)=' "$STATE/h$i.$dir.stats" | sed 's/^/delayer_/' | tr '\n' ' ')"
            # Kernel-side queue drops (queue full / delayer too slow), per namespace.
            out+=" $(in_ns "$BR_NS" cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null |
                awk -v q="$(queue_num "$i" "$dir")" '$1 == q { printf "nfq_queue_dropped=%s nfq_user_dropped=%s", $6, $7 }')"
        fi
    fi
    [[ -n $delay ]] && out+=" delay_ms=$delay"
    [[ -n $jitter ]] && out+=" jitter_ms=$jitter"
    [[ -n $loss ]] && out+=" loss_pct=$loss"
    echo "$out" | tr -s ' ' | sed 's/ $//'
}

# --- calibration ---------------------------------------------------------------

# The emulator is not free: an NFQUEUE hop through a userspace delayer costs
# tens of microseconds.  Measure it with a UDP ping FROM -> TO three times:
# plain, through a zero-delay impairment on FROM's egress (the bare hop cost),
# and with --delay MS (the realized delay).  Subtract the hop cost from
# measured delays, or compare tools only against the same baseline.
cmd_calibrate() {
    need_root; require_up
    local from=1 to=2 count=300 delay=10 pos=()
    while [[ $# -gt 0 ]]; do
        case $1 in
            --count) count=$2; shift ;;
            --delay) delay=$2; shift ;;
            -*) die "unknown calibrate option: $1" ;;
            *) pos+=("$1") ;;
        esac
        shift
    done
    [[ $count =~ ^[0-9]+$ ]] && (( count >= 10 && count <= 20000 )) || die "--count must be 10..20000"
    is_num "$delay" || die "--delay wants a number"
    (( NHOSTS >= 2 )) || die "calibrate needs at least 2 hosts"
    [[ ${#pos[@]} -ge 1 ]] && from=$(host_index "${pos[0]}")
    [[ ${#pos[@]} -ge 2 ]] && to=$(host_index "${pos[1]}")
    [[ $from != "$to" ]] || die "FROM and TO must differ"
    [[ -f $STATE/h$from.egress.imp ]] && die "h$from egress is already impaired; clear it first"

    local port=47799 interval=0.005 budget srv r0 r1 r2 c2
    # Echo server, bounded by count and time (3 runs + warm-up, each count*interval plus delay).
    budget=$(awk -v c="$count" -v i="$interval" -v d="$delay" 'BEGIN { printf "%d", 3 * c * (i + d / 1000 + 0.002) + 15 }')
    in_ns "$(host_ns "$to")" "$PY" "$HELPERS/labnet.py" echo --bind "$SUBNET.$to" --port "$port" \
        --count $(( 3 * count + 20 )) --timeout "$budget" >/dev/null &
    srv=$!
    sleep 0.3
    ping_run() {
        in_ns "$(host_ns "$from")" "$PY" "$HELPERS/labnet.py" ping --to "$SUBNET.$to" --port "$port" \
            --count "$1" --interval "$interval"
    }
    ping_run 10 >/dev/null                       # ARP and caches warm
    r0=$(ping_run "$count")
    "$0" --prefix "$PREFIX" impair "h$from" egress --delay 0 2>/dev/null
    r1=$(ping_run "$count")
    "$0" --prefix "$PREFIX" impair "h$from" egress --delay "$delay" 2>/dev/null
    r2=$(ping_run "$count")
    c2=$(LAB_QUIET=1 "$0" --prefix "$PREFIX" counters "h$from" egress)
    "$0" --prefix "$PREFIX" clear "h$from" egress 2>/dev/null
    kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true

    echo "baseline   $r0"
    echo "hop(0ms)   $r1"
    echo "delay(${delay}ms) $r2"
    echo "counters   $c2"
    awk -v a="$r0" -v b="$r1" -v c="$r2" -v d="$delay" -v m="$(awk '{print $1}' <<<"$c2")" 'function get(s, k,   n, f, kv) {
            n = split(s, f, " "); for (kv = 1; kv <= n; kv++) if (index(f[kv], k "=") == 1) return substr(f[kv], length(k) + 2)
        } BEGIN {
            hop = get(b, "p50_us") - get(a, "p50_us"); ex = get(c, "p50_us") - get(a, "p50_us") - d * 1000
            printf "summary    %s hop_cost_p50_us=%.1f hop_cost_min_us=%.1f delay_ms=%s realized_extra_p50_us=%.1f excess_over_delay_p50_us=%.1f\n",
                m, hop, get(b, "min_us") - get(a, "min_us"), d, get(c, "p50_us") - get(a, "p50_us"), ex
        }'
}

# --- misc ----------------------------------------------------------------------

cmd_status() {
    require_up
    local i dir
    echo "lab=$PREFIX hosts=$NHOSTS querier=$(<"$STATE/querier") bridge_ns=$BR_NS state=$STATE"
    for (( i = 1; i <= NHOSTS; i++ )); do
        local line="h$i ns=$(host_ns "$i") addr=$SUBNET.$i dev=$HOST_IF"
        for dir in egress ingress; do
            [[ -f $STATE/h$i.$dir.imp ]] && line+=" $dir:[$(tr '\n' ' ' <"$STATE/h$i.$dir.imp" | sed 's/ $//')]"
        done
        echo "$line"
    done
}

# Full bounded check of the lab, on its own prefix so it never touches yours.
cmd_selftest() {
    need_root
    local P="${PREFIX}t" me="$0" i rc=0 out
    lab() { "$me" --prefix "$P" "$@"; }
    lab down 2>/dev/null || true
    lab up 4 --querier
    trap 'lab down' EXIT
    for i in 2 3 4; do
        lab exec h1 ping -c 5 -W 1 -i 0.2 -q "$SUBNET.$i" | tail -n 2
    done
    # Multicast: receivers on h2..h4 join, h1 sends 20 datagrams (TTL 1).
    local pids=() f
    for i in 2 3 4; do
        lab exec "h$i" "$PY" "$HELPERS/labnet.py" mrecv --ifaddr "$SUBNET.$i" --expect 20 --timeout 5 \
            >"$STATE_ROOT/$P.mrecv.$i" &
        pids+=($!)
    done
    sleep 1
    lab exec h1 "$PY" "$HELPERS/labnet.py" msend --ifaddr "$SUBNET.1" --count 20 --interval 0.01
    for i in 0 1 2; do wait "${pids[$i]}" || rc=1; done
    for i in 2 3 4; do
        f="$STATE_ROOT/$P.mrecv.$i"; echo "h$i multicast $(<"$f")"; rm -f "$f"
    done
    [[ $rc == 0 ]] || die "selftest: a receiver missed group traffic"
    lab impair h1 egress --delay 10
    lab exec h1 ping -c 10 -i 0.1 -W 1 -q "$SUBNET.2" | tail -n 1
    lab clear h1 egress
    lab calibrate h1 h2 --count 200
    lab impair h1 egress --loss 5
    lab exec h1 ping -c 400 -i 0.005 -W 1 -q "$SUBNET.2" | tail -n 2 || true
    out=$(lab counters h1 egress); echo "counters $out"
    awk -v s="$out" 'BEGIN { n = split(s, f, " "); for (i = 1; i <= n; i++) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
        exit !(v["seen"] >= 400 && v["dropped"] > 0 && v["dropped"] < v["seen"] * 0.15) }' \
        || die "selftest: loss counters look wrong"
    trap - EXIT
    lab down
    if ip netns list | awk -v p="$P-" 'index($1, p) == 1 { found = 1 } END { exit !found }'; then
        die "selftest: namespaces left over"
    fi
    echo "selftest: ok"
}

# --- main ----------------------------------------------------------------------

main() {
    while [[ $# -gt 0 && $1 == --prefix ]]; do
        [[ $# -ge 2 ]] || die "--prefix needs a value"
        PREFIX=$2; BR_NS="$PREFIX-br"; STATE="$STATE_ROOT/$PREFIX"; shift 2
    done
    check_prefix
    local cmd=${1:-help}
    [[ $# -gt 0 ]] && shift
    case $cmd in
        up) cmd_up "$@" ;;
        down) cmd_down ;;
        querier) cmd_querier "$@" ;;
        trunk) cmd_trunk "$@" ;;
        impair) cmd_impair "$@" ;;
        clear) cmd_clear "$@" ;;
        counters) cmd_counters "$@" ;;
        calibrate) cmd_calibrate "$@" ;;
        exec)
            [[ $# -ge 2 ]] || die "usage: lab.sh exec HOST CMD..."
            require_up; local i; i=$(host_index "$1"); shift
            exec ip netns exec "$(host_ns "$i")" "$@" ;;
        addr)
            [[ $# -ge 1 ]] || die "usage: lab.sh addr HOST [-6]"
            require_up; local i; i=$(host_index "$1")
            if [[ ${2:-} == -6 ]]; then echo "$SUBNET6:$i"; else echo "$SUBNET.$i"; fi ;;
        dev) [[ $# -ge 1 ]] || die "usage: lab.sh dev HOST"; require_up; host_index "$1" >/dev/null; echo "$HOST_IF" ;;
        ns) [[ $# -ge 1 ]] || die "usage: lab.sh ns HOST"; require_up; host_ns "$(host_index "$1")" ;;
        status) cmd_status ;;
        require) need_root; lab_require ;;
        missing) lab_missing_packages ;;
        can-delay) cmd_can_delay ;;
        selftest) cmd_selftest ;;
        help|-h|--help) usage ;;
        *) usage >&2; die "unknown command '$cmd'" ;;
    esac
}

main "$@"
