#!/usr/bin/env python3
"""Network-namespace membership test with 5% random loss (issue 8, "Real transport").

Topology (all created by this test, all deleted on every exit path):

    hub namespace  dsw<pid>h : bridge br0
      veth b<i> ──── v<i> in node namespace dsw<pid>n<i>, 10.200.77.<i>/24, i = 1..NS

Inside every node namespace an nftables rule drops 5% of the packets it sends to the subnet,
UDP and TCP alike (this kernel has no netem):
    nft add rule inet dogloss out ip daddr 10.200.77.0/24 numgen random mod 100 < 5 counter drop

Two dog-swim-node processes run in each namespace (10 members), joining through the first.
Checks: convergence; no false death during a steady window under loss; SIGKILL of one member is
detected by every survivor within the configuration's bound; still no other death afterwards;
the nft counters prove packets were really dropped.

Needs root, iproute2 and nftables. Runs only with DOG_NETNS_TESTS=1; otherwise it prints why and
exits 77 (CTest SKIP_RETURN_CODE). Only addresses inside namespaces created here are used.
"""
import argparse
import atexit
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swimtest  # noqa: E402
from swimtest import log, wait_until  # noqa: E402

SKIP = 77
SUBNET = "10.200.77"
PREFIX = "dsw%dn" % os.getpid()
HUB = "dsw%dh" % os.getpid()
created = []  # namespaces to delete


def sh(*argv, check=True):
    r = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
    return r.stdout


def cleanup():
    for ns in reversed(created):
        subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
    created.clear()


def add_ns(name):
    sh("ip", "netns", "add", name)
    created.append(name)
    sh("ip", "-n", name, "link", "set", "lo", "up")


def build_topology(count, loss_pct):
    add_ns(HUB)
    sh("ip", "-n", HUB, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", HUB, "link", "set", "br0", "up")
    names = []
    for i in range(1, count + 1):
        ns = "%s%d" % (PREFIX, i)
        add_ns(ns)
        sh("ip", "-n", HUB, "link", "add", "b%d" % i, "type", "veth", "peer", "name", "v%d" % i, "netns", ns)
        sh("ip", "-n", HUB, "link", "set", "b%d" % i, "master", "br0")
        sh("ip", "-n", HUB, "link", "set", "b%d" % i, "up")
        sh("ip", "-n", ns, "addr", "add", "%s.%d/24" % (SUBNET, i), "dev", "v%d" % i)
        sh("ip", "-n", ns, "link", "set", "v%d" % i, "up")
        if loss_pct > 0:
            sh("ip", "netns", "exec", ns, "nft", "add", "table", "inet", "dogloss")
            sh("ip", "netns", "exec", ns, "nft", "add", "chain", "inet", "dogloss", "out",
               "{ type filter hook output priority 0 ; }")
            sh("ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "dogloss", "out", "ip", "daddr",
               "%s.0/24" % SUBNET, "numgen", "random", "mod", "100", "<", str(loss_pct), "counter", "drop")
        names.append(ns)
    return names


def dropped_packets(ns):
    out = sh("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "dogloss", check=False)
    m = re.search(r"counter packets (\d+)", out)
    return int(m.group(1)) if m else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespaces", type=int, default=5)
    ap.add_argument("--per-ns", type=int, default=2)
    ap.add_argument("--loss-pct", type=int, default=5)
    ap.add_argument("--steady", type=float, default=30, help="seconds under loss before the kill")
    ap.add_argument("--after", type=float, default=15, help="seconds under loss after detection")
    ap.add_argument("--preset", default="lan")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()

    if os.environ.get("DOG_NETNS_TESTS") != "1":
        print("SKIP: network-namespace test runs only with DOG_NETNS_TESTS=1 (needs root, iproute2, nftables)")
        return SKIP
    missing = [t for t in ("ip", "nft") if shutil.which(t) is None]
    if os.geteuid() != 0 or missing:
        print("SKIP: needs root and %s" % (", ".join(missing) or "root"))
        return SKIP

    rnd = random.Random(args.seed)
    log("netns_loss_test: %d namespaces x %d nodes, %d%% loss, seed=%d"
        % (args.namespaces, args.per_ns, args.loss_pct, args.seed))
    binary = swimtest.find_binary()
    key = swimtest.random_key_hex()
    tmp = tempfile.mkdtemp(prefix="dog-swim-netns-")
    nodes = []

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        nss = build_topology(args.namespaces, args.loss_pct)
        seed_addr = "%s.1:7946" % SUBNET
        for i, ns in enumerate(nss, start=1):
            for j in range(args.per_ns):
                name = "ns%d-%d" % (i, j)
                argv = ["ip", "netns", "exec", ns, binary, "--bind", "%s.%d:%d" % (SUBNET, i, 7946 + j),
                        "--name", name, "--key", key, "--preset", args.preset, "--seed", str(rnd.randrange(1, 2**63))]
                if nodes:
                    argv += ["--join", seed_addr]
                nodes.append(swimtest.Node(name, argv, os.path.join(tmp, name + ".jsonl")))
                if len(nodes) == 1:
                    first = nodes[0]

                    def seed_started():
                        if not first.alive():
                            raise AssertionError("seed exited early: %s" % first.stderr_text())
                        return first.addr is not None
                    wait_until(seed_started, 10, "the seed's start line", [first])
        names = [n.name for n in nodes]

        def converged():
            return swimtest.all_see_each_other_alive(nodes)

        t0 = time.monotonic()
        try:
            wait_until(converged, 60, "every member to see all %d alive" % len(nodes), nodes)
        except AssertionError as e:
            raise AssertionError("%s; gaps: %s" % (e, swimtest.view_gaps(nodes)))
        log("converged in %.2f s under %d%% loss" % (time.monotonic() - t0, args.loss_pct))

        def deaths(among, exclude=None):
            out = []
            for n in among:
                n.poll_output()
                for e in n.events:
                    if e.get("event") == "dead" and e.get("member") != exclude:
                        out.append((n.name, e["member"]))
            return out

        time.sleep(args.steady)
        false = deaths(nodes)
        if false:
            raise AssertionError("false deaths under loss before any crash: %s" % false)
        suspects = sum(1 for n in nodes for e in n.events if e.get("event") == "suspect" and e.get("local"))
        log("steady %.0f s under loss: 0 deaths, %d suspicions raised" % (args.steady, suspects))

        victim = nodes[rnd.randrange(1, len(nodes))]
        survivors = [n for n in nodes if n is not victim]
        cfg = nodes[0].config
        wait_s = swimtest.detection_bound_s(cfg, len(nodes), cfg["awareness_max_multiplier"] - 1)
        log("SIGKILL %s" % victim.name)
        t_kill = time.monotonic()
        victim.kill(signal.SIGKILL)
        victim.proc.wait(timeout=5)
        wait_until(lambda: all(n.first_event("dead", victim.name) for n in survivors), wait_s + 5,
                   "every survivor to mark %s dead" % victim.name, survivors)
        worst = max(n.first_event("dead", victim.name)["t"] - t_kill for n in survivors)
        health = max(n.max_health(t_kill, n.first_event("dead", victim.name)["t"]) for n in survivors)
        bound = swimtest.detection_bound_s(cfg, len(nodes), health)
        if worst > bound:
            raise AssertionError("detection took %.2f s > bound %.2f s (health %d)" % (worst, bound, health))
        log("dead at every survivor after %.2f s (bound %.2f s, health %d)" % (worst, bound, health))

        time.sleep(args.after)
        false = deaths(survivors, exclude=victim.name)
        if false:
            raise AssertionError("false deaths under loss: %s" % false)
        dropped = sum(dropped_packets(ns) for ns in nss)
        if args.loss_pct > 0 and dropped == 0:
            raise AssertionError("nftables dropped nothing: the loss rule is not working")
        log("nft dropped %d packets; no false deaths; PASS" % dropped)
        return 0
    finally:
        for n in nodes:
            n.close()
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
