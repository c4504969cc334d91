#!/usr/bin/env python3
"""deploy/haproxy/ for real: HAProxy (Debian's haproxy) rendered from haproxy.cfg.template in
front of three dog-chat nodes, each with --admin, checked on /readyz.

1. HAProxy's active checks see all three nodes UP (its runtime API, `show stat`).
2. Six chat users connect through HAProxy: round robin without stickiness spreads them over
   all three nodes, and every user hears every other.
3. POST /drain on node2's admin port: HAProxy marks node2 DOWN (its /readyz answers 503), node2
   exits 0, its clients get 1001; every closed client reconnects through HAProxy, none of the
   new connections goes to node2, and all users chat again.
4. Retries and idempotency, against a stub backend that answers 503 to everything but /readyz:
   a GET is tried 3 times (retry-on 503, retries 2), a POST exactly once (disable-l7-retry).

Usage: haproxy_test.py BIN_DIR. Skipped (exit 77) when haproxy is not installed
(scripts/setup.sh installs it). Every wait is bounded; every process is stopped at the end.
"""
import asyncio, csv, http.server, io, json, os, shutil, socket, subprocess, sys, tempfile, threading, time
import urllib.request

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from deployproc import Proc, cp, finish, get  # noqa: E402
from clusterproc import check  # noqa: E402
import chat_cluster_test as cct  # noqa: E402  (recv_until, say_and_hear, reconnect, wait_port)


def render(template, values):
    """What `envsubst '${A} ${B}'` does with the listed variables."""
    text = open(template).read()
    for k, v in values.items():
        text = text.replace("${" + k + "}", v)
    return text


def haproxy_stats(sock_path):
    """{server name: (status, total sessions)} of backend dog_nodes, from the runtime API."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    try:
        s.connect(sock_path)
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    except OSError:
        return {}
    finally:
        s.close()
    text = data.decode().lstrip("# ")
    return {r["svname"]: (r["status"], int(r["stot"] or 0)) for r in csv.DictReader(io.StringIO(text))
            if r.get("pxname") == "dog_nodes" and r["svname"] not in ("BACKEND", "FRONTEND")}


def wait_stats(sock_path, pred, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = haproxy_stats(sock_path)
        if st and pred(st):
            return st
        time.sleep(0.1)
    return haproxy_stats(sock_path)


def post(url, timeout=10, method="POST"):
    """The status of `method url` (an empty body for POST)."""
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


async def scenario(nodes, aports, lb_port, sock_path):
    url = f"ws://127.0.0.1:{lb_port}/ws?u="
    users = {f"h{i}": await websockets.connect(url + f"h{i}") for i in range(6)}
    st = haproxy_stats(sock_path)
    check(all(n in st and st[n][1] >= 1 for n in ("node1", "node2", "node3")),
          f"round robin without stickiness: every node got connections ({st})")
    names = sorted(users)
    check(await cct.say_and_hear(users["h0"], "h0", "before", [users[n] for n in names if n != "h0"]),
          "everyone hears each other through HAProxy")

    status = post(f"http://127.0.0.1:{aports[1]}/drain")
    check(status == 202, f"POST /drain on node2's admin port is accepted ({status})")
    # Until the checks mark it DOWN, round robin still picks the draining node, which no longer
    # accepts: HAProxy's retry-on/redispatch must hide that from plain requests.
    statuses = []
    end = time.monotonic() + 30
    while time.monotonic() < end:
        st = haproxy_stats(sock_path)
        if st.get("node2", ("",))[0].startswith("DOWN"):
            break
        statuses.append(await asyncio.get_running_loop().run_in_executor(None, lambda: get(f"http://127.0.0.1:{lb_port}/")[0]))
    check(st["node2"][0].startswith("DOWN"), f"HAProxy marks the draining node DOWN ({st['node2']})")
    check(statuses and all(s == 200 for s in statuses),
          f"every request through HAProxy until then was answered 200 ({len(statuses)} requests: {sorted(set(map(str, statuses)))})")
    check(all(st[n][0] == "UP" for n in ("node1", "node3")), f"the other nodes stay UP ({st})")
    stot_down = st["node2"][1]
    code = await asyncio.get_running_loop().run_in_executor(None, lambda: nodes[1].proc.wait(30))
    check(code == 0, f"the drained node exits 0 ({code})")

    codes = {}
    for n in names:
        try:
            await asyncio.wait_for(users[n].wait_closed(), 3)
        except asyncio.TimeoutError:
            pass
        codes[n] = users[n].close_code if users[n].closed else "open"
    check(1001 in codes.values(), f"the drained node's clients got 1001: {codes}")
    check(all(c in ("open", 1001, 1012) for c in codes.values()), f"others are open or told to reconnect: {codes}")
    for n in names:
        if users[n].closed:
            users[n] = await cct.reconnect(url + n, n)
    st = haproxy_stats(sock_path)
    check(st["node2"][1] == stot_down, f"no reconnect went to the DOWN node ({stot_down} then {st['node2'][1]})")
    for n in names:
        check(await cct.say_and_hear(users[n], n, f"after from {n}", [users[o] for o in names if o != n], 20),
              f"after the drain, {n}'s message reaches everyone")
    for ws in users.values():
        await ws.close()


class Stub503(http.server.BaseHTTPRequestHandler):
    """200 to HAProxy's /readyz checks, 503 to every other request, counted per method."""
    counts = {}

    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        ok = self.path == "/readyz"
        if not ok:
            Stub503.counts[self.command] = Stub503.counts.get(self.command, 0) + 1
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = answer

    def log_message(self, *args):
        pass


def retries_are_idempotent(haproxy, tmp):
    """The template in front of a stub that always answers 503: GET retried, POST not."""
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub503)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    sport = stub.server_address[1]
    lb_port, sock_path = cp.free_port(), os.path.join(tmp, "stub.sock")
    cfg = os.path.join(tmp, "stub.cfg")
    with open(cfg, "w") as f:
        f.write(render(os.path.join(ROOT, "deploy", "haproxy", "haproxy.cfg.template"),
                       {"DOG_LISTEN": f"127.0.0.1:{lb_port}", "DOG_HAPROXY_SOCKET": sock_path,
                        "DOG_SERVERS": "\n  ".join(f"server stub{i} 127.0.0.1:{sport} check" for i in (1, 2))}))
    lb = Proc([haproxy, "-db", "-f", cfg])
    try:
        check(cct.wait_port(lb_port), "HAProxy starts in front of the stub")
        st = wait_stats(sock_path, lambda s: len(s) == 2 and all(v[0] == "UP" for v in s.values()))
        check(len(st) == 2 and all(v[0] == "UP" for v in st.values()), f"the stub is UP ({st})")
        for method in ("GET", "POST"):
            status = post(f"http://127.0.0.1:{lb_port}/x", method=method)
            check(status == 503, f"{method} through HAProxy: the stub's 503 ({status})")
        check(Stub503.counts.get("GET") == 3, f"a GET that meets 503 is tried 3 times ({Stub503.counts})")
        check(Stub503.counts.get("POST") == 1, f"a POST is sent once, never retried after a 503 ({Stub503.counts})")
    finally:
        lb.stop()
        stub.shutdown()
        stub.server_close()


def main():
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.path.exists(haproxy):
        print("skipped: haproxy is not installed (scripts/setup.sh installs it)")
        sys.exit(77)
    cp.BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DOG_BIN_DIR", "build/bin")
    tmp = tempfile.mkdtemp(prefix="dog-haproxy-")
    nodes, lb = [], None
    try:
        _, key = cp.keygen(tmp)
        cports = [cp.free_port() for _ in range(3)]
        hports = [cp.free_port() for _ in range(3)]
        aports = [cp.free_port() for _ in range(3)]
        for i in range(3):
            args = ["--http", f"127.0.0.1:{hports[i]}", "--admin", f"127.0.0.1:{aports[i]}",
                    "--bind", f"127.0.0.1:{cports[i]}", "--name", f"node{i + 1}", "--preset", "local",
                    "--cluster-key-file", key, "--limit", "2", "--drain-timeout", "10"]
            if i:
                args += ["--join", f"127.0.0.1:{cports[0]}"]
            nodes.append(cp.Node(args))
            check(nodes[-1].wait_line(lambda l: l.startswith("dog: serving on"), 60), f"node{i + 1} serves")
        check(all(n.wait_line(lambda l: l == "dog: cluster members 3", 60) for n in nodes), "all three see 3 members")

        lb_port = cp.free_port()
        sock_path = os.path.join(tmp, "haproxy.sock")
        servers = "\n  ".join(f"server node{i + 1} 127.0.0.1:{hports[i]} check port {aports[i]}" for i in range(3))
        cfg = os.path.join(tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(render(os.path.join(ROOT, "deploy", "haproxy", "haproxy.cfg.template"),
                           {"DOG_LISTEN": f"127.0.0.1:{lb_port}", "DOG_HAPROXY_SOCKET": sock_path,
                            "DOG_SERVERS": servers}))
        lb = Proc([haproxy, "-db", "-f", cfg])
        if not cct.wait_port(lb_port):
            raise RuntimeError("HAProxy did not start: " + "\n".join(lb.lines[-20:]))
        st = wait_stats(sock_path, lambda s: len(s) == 3 and all(v[0] == "UP" for v in s.values()))
        check(len(st) == 3 and all(v[0] == "UP" for v in st.values()), f"HAProxy's /readyz checks see 3 nodes UP ({st})")
        asyncio.run(asyncio.wait_for(scenario(nodes, aports, lb_port, sock_path), 180))
        retries_are_idempotent(haproxy, tmp)
    finally:
        if lb:
            if cp.failures:
                print("haproxy log (last 30 lines):\n" + "\n".join(lb.lines[-30:]))
            lb.stop()
        for n in nodes:
            n.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if cct.retried_connects:
        print(f"note: {len(cct.retried_connects)} reconnects saw a 5xx first and were retried: {cct.retried_connects}")
    finish()


if __name__ == "__main__":
    main()
