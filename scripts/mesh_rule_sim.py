"""How much loss the mesh's every-peer alerts need before they fire, simulated: each of N-1 peers
measures a host's column cell from `probes` probes (binomial loss at rate p); the statistic over
the cells is compared with the alerts' 1 % threshold: the least (the rules before 2026-12-03), and
the rules' now (contrib/prometheus/mcprobe-mesh-rules.yml: the least over 2-10 peers, Prometheus's
quantile 0.1, with its interpolation, over 11 or more). Prints, per loss rate, the share of trials in which the alert's condition
holds (one evaluation). Usage: mesh_rule_sim.py [HOSTS [PROBES [TRIALS]]]; defaults 200 60 2000
(60 = 5 minutes at serve --mesh's default 0.2 probe/s)."""

import random
import sys


def quantile(q, xs):
    """Prometheus's quantile(): linear interpolation between the closest ranks."""
    s = sorted(xs)
    rank = q * (len(s) - 1)
    lo = int(rank)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (rank - lo)


def main():
    hosts, probes, trials = (int(a) for a in (sys.argv[1:] + ["200", "60", "2000"][len(sys.argv) - 1 :])[:3])
    rng = random.Random(1)
    peers = hosts - 1
    print(f"{hosts} hosts ({peers} peers per column), {probes} probes per cell, {trials} trials")
    print("loss | the least over the peers (before) | the rule (least below 11 peers, else quantile 0.1)")
    for p in (0.01, 0.02, 0.03, 0.05, 0.08, 0.10, 0.15):
        fired = [0, 0]
        for _ in range(trials):
            cells = [sum(rng.random() < p for _ in range(probes)) / probes for _ in range(peers)]
            fired[0] += min(cells) > 0.01
            fired[1] += (quantile(0.1, cells) if peers >= 11 else min(cells)) > 0.01
        print(f"{p:4.0%} | {fired[0] / trials:6.1%} | {fired[1] / trials:6.1%}")


if __name__ == "__main__":
    main()
