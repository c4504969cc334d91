"""Helpers shared by the real-process and network-namespace membership tests.

Each member is one `dog-swim-node` process whose stdout (JSON lines, see
node/swim/swim_node_main.cc) goes to a file in a private temp dir; the tests poll those files.
Every wait has a deadline, and every child gets PR_SET_PDEATHSIG=SIGKILL so it dies with the
test even if the test itself is killed (e.g. by a CTest timeout).
"""
import ctypes
import json
import math
import os
import signal
import subprocess
import sys
import time

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def find_binary():
    d = os.environ.get("DOG_BIN_DIR")
    cands = [os.path.join(d, "dog-swim-node")] if d else []
    here = os.path.dirname(os.path.abspath(__file__))
    cands.append(os.path.join(here, "..", "..", "build", "bin", "dog-swim-node"))
    for c in cands:
        if os.path.exists(c):
            return os.path.abspath(c)
    raise SystemExit("dog-swim-node not found (set DOG_BIN_DIR)")


class Node:
    def __init__(self, name, argv, out_path):
        self.name = name
        self.out_path = out_path
        self.out = open(out_path, "wb")
        self.err = open(out_path + ".err", "wb")
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        self._pos = 0
        self._buf = b""
        self.events = []  # parsed JSON objects, in order
        self.addr = None
        self.config = None

    def poll_output(self):
        with open(self.out_path, "rb") as f:
            f.seek(self._pos)
            data = f.read()
        self._pos += len(data)
        self._buf += data
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            if not line.strip():
                continue
            ev = json.loads(line)
            if ev.get("event") == "start":
                self.addr = ev["addr"]
                self.config = ev["config"]
            self.events.append(ev)

    def alive(self):
        return self.proc.poll() is None

    def view(self):
        """member -> last event kind, from this node's point of view (excluding itself)."""
        v = {}
        for e in self.events:
            if e.get("member") and e["member"] != self.name:
                v[e["member"]] = e["event"]
        return v

    def max_health(self, since, until=float("inf")):
        """Highest health score this node reported in [since, until] (0 if it never changed),
        including the score in force at `since`."""
        best, current = 0, 0
        for e in self.events:
            if e.get("event") != "health":
                continue
            if e["t"] <= since:
                current = e["score"]
            elif e["t"] <= until:
                best = max(best, e["score"])
        return max(best, current)

    def first_event(self, kind, member):
        for e in self.events:
            if e.get("event") == kind and e.get("member") == member:
                return e
        return None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def close(self):
        self.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.out.close()
        self.err.close()

    def stderr_text(self):
        try:
            with open(self.out_path + ".err", "r", errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""


def wait_until(pred, timeout, what, nodes=(), step=0.1):
    deadline = time.monotonic() + timeout
    while True:
        for n in nodes:
            n.poll_output()
        if pred():
            return
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(step)


def detection_bound_s(cfg, n, health=0):
    """Upper bound, in seconds, from a crash to every survivor marking the member dead, as implied
    by the configuration (docs/membership-transport.md, "Detection bound"), for a converged view.
    `health` is the highest Lifeguard health score any survivor reported around the crash
    (Node.max_health): probing stretches by the multiplier m = health + 1, by design, when a
    member misses acks because its machine is overloaded.

      B = successor_probe_every * T * m           the crashed member's ring predecessor probes it
                                                 at least every successor_probe_every periods
                                                 (round-robin alone: (2(N-1) - 1) * T * m)
        + min(T, probe_timeout + indirect_timeout) * m  the failed probe turns into a suspicion
        + suspicion_max_mult * suspicion_mult * max(1, log10 N) * T
                                                 Lifeguard's longest suspicion (no confirmations)
        + retransmit_mult * ceil(log10(N+1)) * gossip_interval + T
                                                 the dead update reaches every survivor
        + 1 s                                    process scheduling on a shared 2-core machine

    Typical detection is 2-3.5 s at N=10 (LAN preset); on a quiet machine (m = 1) this bound is
    13.6 s, so a regression of 4x or more fails (the round-robin term alone used to allow 28.6 s).
    """
    T = cfg["probe_interval_ms"] / 1000.0
    m = 1 + max(0, health)
    every = cfg.get("successor_probe_every", 0)
    first = (every * T if every > 0 else (2 * (n - 1) - 1) * T) * m
    probe = min(T, (cfg["probe_timeout_ms"] + cfg["indirect_timeout_ms"]) / 1000.0) * m
    smin = cfg["suspicion_mult"] * max(1.0, math.log10(n)) * T
    smax = cfg["suspicion_max_mult"] * smin if cfg["lifeguard"] else smin
    dissem = cfg["retransmit_mult"] * max(1, math.ceil(math.log10(n + 1))) * cfg["gossip_interval_ms"] / 1000.0 + T
    return first + probe + smax + dissem + 1.0


def random_key_hex():
    return os.urandom(32).hex()


def all_see_each_other_alive(nodes):
    """True once every node's view has every other node as join/alive; raises if one exited."""
    names = [n.name for n in nodes]
    for n in nodes:
        if not n.alive():
            raise AssertionError("%s exited early (rc=%s): %s" % (n.name, n.proc.returncode, n.stderr_text()))
        v = n.view()
        if any(v.get(m) not in ("join", "alive") for m in names if m != n.name):
            return False
    return True


def view_gaps(nodes):
    """For a failed convergence wait: who does not yet see whom as join/alive, the state it does
    see, and each node's last health score -- where the time went."""
    names = [n.name for n in nodes]
    lines = []
    for n in nodes:
        n.poll_output()
        v = n.view()
        gaps = {m: v.get(m, "unknown") for m in names if m != n.name and v.get(m) not in ("join", "alive")}
        health = [e["score"] for e in n.events if e.get("event") == "health"]
        if gaps:
            lines.append("%s (health %s) misses %s" % (n.name, health[-1] if health else 0, gaps))
    return "; ".join(lines) or "none"

