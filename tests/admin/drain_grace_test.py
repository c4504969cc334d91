#!/usr/bin/env python3
"""--drain-grace-s on real dog-chat nodes (one-member clusters with --admin):

1. default (0): once POST /drain has answered 202, /readyz is 503 and the app port already
   refuses connections (the listener closed at the moment the drain began);
2. --drain-grace-s 30: after POST /drain, /readyz is 503 `draining` but the app port still
   answers and the node has not drained (it is killed there: no 30 s wait);
3. --drain-grace-s 1: the node logs the grace, then drains and exits 0.

Usage: drain_grace_test.py BIN_DIR. Every wait is bounded; every node is stopped at the end.
"""
import os, socket, tempfile, urllib.error, urllib.request

from adminproc import cp, finish  # noqa: E402

check = cp.check


def status(url, method="GET"):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def refuses(port):
    s = socket.socket()
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    finally:
        s.close()


def start(key, grace):
    hport, aport = cp.free_port(), cp.free_port()
    args = ["--http", f"127.0.0.1:{hport}", "--bind", f"127.0.0.1:{cp.free_port()}", "--preset", "local",
            "--cluster-key-file", key, "--admin", f"127.0.0.1:{aport}", "--drain-timeout", "10"]
    if grace is not None:
        args += ["--drain-grace-s", str(grace)]
    n = cp.Node(args)
    check(n.wait_line(lambda l: "serving on" in l), f"the node with grace {grace} serves")
    check(status(f"http://127.0.0.1:{aport}/readyz") == (200, "ready\n"), "/readyz is 200 before the drain")
    st, _ = status(f"http://127.0.0.1:{aport}/drain", "POST")
    check(st == 202, f"POST /drain: 202 ({st})")
    return n, hport, aport


with tempfile.TemporaryDirectory() as tmp:
    _, key = cp.keygen(tmp)
    nodes = []
    try:
        n, hport, aport = start(key, None)
        nodes.append(n)
        check(refuses(hport), "no grace: the app port refuses connections as soon as the drain has begun")

        n, hport, aport = start(key, 30)
        nodes.append(n)
        check(status(f"http://127.0.0.1:{aport}/readyz") == (503, "draining\n"), "grace: /readyz is 503 draining")
        st, _ = status(f"http://127.0.0.1:{hport}/")
        check(st < 500, f"grace: the app port still answers requests ({st})")
        check(n.proc.poll() is None and not n.wait_line(lambda l: l == "dog: drained", 0),
              "grace: the node has not drained yet")
        n.stop(sig=9)

        n, hport, aport = start(key, 1)
        nodes.append(n)
        check(n.wait_line(lambda l: "after a 1 s grace" in l), "grace 1 s: the draining line names the grace")
        check(n.wait_line(lambda l: l == "dog: drained", 60), "grace 1 s: the node drains after the grace")
        try:
            rc = n.proc.wait(30)
        except Exception:
            rc = None
        check(rc == 0, f"grace 1 s: the node exits 0 ({rc})")
    finally:
        finish(nodes)
