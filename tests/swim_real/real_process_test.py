#!/usr/bin/env python3
"""Real-process membership test (issue 8, "Real transport").

Starts N (default 10) dog-swim-node processes on 127.0.0.1 with real UDP+TCP sockets and
encryption, all joining through the first one. Checks:
  1. convergence: every member sees every other alive (bounded wait);
  2. SIGKILL of one non-seed member: every survivor reports it dead within the bound implied by
     the configuration (swimtest.detection_bound_s), and nobody reports any other member
     suspect-then-dead (no false deaths);
  3. SIGTERM of another member: it exits 0 after a graceful leave and every remaining member
     reports `leave` for it (not `dead`).
Every child is killed on every path. Exit status 0 = pass.
"""
import argparse
import os
import random
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swimtest  # noqa: E402
from swimtest import log, wait_until  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--preset", default="lan")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    log("real_process_test: nodes=%d preset=%s seed=%d" % (args.nodes, args.preset, args.seed))
    binary = swimtest.find_binary()
    key = swimtest.random_key_hex()
    tmp = tempfile.mkdtemp(prefix="dog-swim-real-")
    nodes = []
    try:
        def spawn(name, join):
            argv = [binary, "--bind", "127.0.0.1:0", "--name", name, "--key", key, "--preset", args.preset,
                    "--seed", str(rnd.randrange(1, 2**63))]
            if join:
                argv += ["--join", join]
            n = swimtest.Node(name, argv, os.path.join(tmp, name + ".jsonl"))
            nodes.append(n)
            return n

        seed = spawn("n0", None)
        def seed_started():
            if not seed.alive():
                raise AssertionError("seed exited early (rc=%s): %s" % (seed.proc.returncode, seed.stderr_text()))
            return seed.addr is not None
        wait_until(seed_started, 10, "the seed's start line", [seed])
        for i in range(1, args.nodes):
            spawn("n%d" % i, seed.addr)
        names = [n.name for n in nodes]

        def converged():
            return swimtest.all_see_each_other_alive(nodes)

        t0 = time.monotonic()
        try:
            wait_until(converged, 30, "every member to see all %d alive" % args.nodes, nodes)
        except AssertionError as e:
            raise AssertionError("%s; gaps: %s" % (e, swimtest.view_gaps(nodes)))
        log("converged in %.2f s" % (time.monotonic() - t0))
        time.sleep(2)  # a little steady state before the crash

        victim = nodes[rnd.randrange(1, len(nodes))]
        survivors = [n for n in nodes if n is not victim]
        cfg = seed.config
        # Wait as long as the worst health multiplier could justify; judge against the bound
        # for the health the survivors actually reported.
        wait_s = swimtest.detection_bound_s(cfg, args.nodes, cfg["awareness_max_multiplier"] - 1)
        log("SIGKILL %s" % victim.name)
        t_kill = time.monotonic()
        victim.kill(signal.SIGKILL)
        victim.proc.wait(timeout=5)

        def all_dead():
            return all(n.first_event("dead", victim.name) for n in survivors)

        wait_until(all_dead, wait_s + 5, "every survivor to mark %s dead" % victim.name, survivors)
        worst = 0.0
        first_suspect = min(
            (n.first_event("suspect", victim.name) or {"t": float("inf")})["t"] for n in survivors) - t_kill
        health = max(n.max_health(t_kill, n.first_event("dead", victim.name)["t"]) for n in survivors)
        bound = swimtest.detection_bound_s(cfg, args.nodes, health)
        for n in survivors:
            dt = n.first_event("dead", victim.name)["t"] - t_kill
            worst = max(worst, dt)
            if dt > bound:
                raise AssertionError("%s saw %s dead after %.2f s > bound %.2f s (health %d)"
                                     % (n.name, victim.name, dt, bound, health))
        log("first suspicion after %.2f s; dead at every survivor after %.2f s (bound %.2f s, health %d)"
            % (first_suspect, worst, bound, health))

        # Graceful leave of another member.
        leaver = survivors[-1] if survivors[-1] is not seed else survivors[-2]
        rest = [n for n in survivors if n is not leaver]
        log("SIGTERM %s" % leaver.name)
        leaver.kill(signal.SIGTERM)
        try:
            rc = leaver.proc.wait(timeout=10)
        except Exception:
            raise AssertionError("%s did not exit within 10 s of SIGTERM" % leaver.name)
        if rc != 0:
            raise AssertionError("%s exited %d after SIGTERM: %s" % (leaver.name, rc, leaver.stderr_text()))
        leaver.poll_output()
        if not any(e.get("event") == "stopped" for e in leaver.events):
            raise AssertionError("%s printed no 'stopped' line" % leaver.name)
        wait_until(lambda: all(n.first_event("leave", leaver.name) for n in rest), 10,
                   "every member to report %s's leave" % leaver.name, rest)

        # No false deaths: nobody but the victim was ever declared dead.
        for n in survivors:
            n.poll_output()
            for e in n.events:
                if e.get("event") == "dead" and e.get("member") != victim.name:
                    raise AssertionError("false death: %s saw %s dead" % (n.name, e["member"]))
        log("PASS")
        return 0
    finally:
        for n in nodes:
            n.close()


if __name__ == "__main__":
    sys.exit(main())
