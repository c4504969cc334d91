#!/usr/bin/env python3
"""dog-chat on three real processes behind a real nginx (deploy/nginx/), clients from
python3-websockets.

1. The project's own chat end-to-end scenario (tests/e2e/chat_e2e.py) runs unchanged through
   nginx (round robin, no sticky sessions): users land on different nodes.
2. Users connected directly to each node see each other's joins, messages, whispers and exits.
3. kill -9 of one node: every survivor logs that it is gone; clients connected to survivors whose
   Replica lived there are closed with 1012; every client that lost its connection reconnects
   through nginx and all of them exchange messages again; clients that never lost their socket
   keep it.
4. SIGTERM of another: it exits 0 within its drain timeout, its clients get 1001, the last node
   hears it left, and everyone reconnects and talks.

Usage: chat_cluster_test.py BIN_DIR. Every wait is bounded; every process is stopped at the end.
"""
import asyncio, json, os, shutil, subprocess, sys, tempfile, time

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import clusterproc as cp  # noqa: E402
from clusterproc import check  # noqa: E402


def start_nginx(tmp, port, http_ports):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    d = os.path.join(tmp, "nginx")
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    shutil.copy(os.path.join(ROOT, "deploy", "nginx", "nginx-local.conf"), os.path.join(d, "nginx.conf"))
    conf = open(os.path.join(ROOT, "deploy", "nginx", "dog.conf.template")).read()
    servers = "".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=5s; " for p in http_ports)
    conf = conf.replace("${DOG_LISTEN}", f"127.0.0.1:{port}").replace("${DOG_UPSTREAM_SERVERS}", servers)
    open(os.path.join(d, "dog.conf"), "w").write(conf)
    global nginx_log
    nginx_log = os.path.join(d, "error.log")
    proc = subprocess.Popen([nginx, "-p", d, "-c", os.path.join(d, "nginx.conf"), "-e", "stderr"],
                            stdout=subprocess.DEVNULL, stderr=open(nginx_log, "wb"))
    if not wait_port(port):
        raise RuntimeError("nginx did not start")
    return proc


nginx_log = None


def print_nginx_log():
    """nginx's own account of a 5xx (which upstream failed and how), for the CI log."""
    if nginx_log and os.path.exists(nginx_log):
        print("nginx error log (last 40 lines):")
        print("".join(open(nginx_log, errors="replace").readlines()[-40:]))


def wait_port(port, timeout=20):
    import socket
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


async def recv_until(ws, pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            raw = await asyncio.wait_for(ws.recv(), max(0.01, end - time.monotonic()))
        except asyncio.TimeoutError:
            return None
        except websockets.ConnectionClosed:
            return None
        m = json.loads(raw)
        if pred(m):
            return m
    return None


retried_connects = []


async def reconnect(url, name):
    """A client's reconnect after a fault: tries with a doubling back-off, as browsers do, for
    longer than the balancer's fail_timeout (5 s): once nginx has marked every upstream failed
    (one 503 from the last live node is enough with max_fails=1) it answers 502 itself until
    then. A 5xx is recorded and reported, never hidden."""
    delay = 0.25
    for attempt in range(8):
        try:
            return await websockets.connect(url)
        except websockets.InvalidStatusCode as e:
            if e.status_code < 500 or attempt == 7:
                print_nginx_log()
                raise
            retried_connects.append((name, e.status_code))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 4.0)


async def say_and_hear(sender, name, text, listeners, timeout=15.0):
    """`sender` says `text`; True if every listener hears it from `name`."""
    await sender.send(json.dumps({"type": "msg", "text": text}))
    results = await asyncio.gather(*(recv_until(ws, lambda m: m.get("type") == "user:msg" and
                                                m.get("text") == text and m.get("from") == name, timeout)
                                     for ws in listeners))
    return all(r is not None for r in results)


async def direct_users(http_ports):
    """One user per node, connected to that node's own port: every pair spans two nodes."""
    names = [f"d{i}" for i in range(len(http_ports) * 2)]
    socks = {}
    for i, n in enumerate(names):
        socks[n] = await websockets.connect(f"ws://127.0.0.1:{http_ports[i % len(http_ports)]}/ws?u={n}")
    # Joins: the last user's join reaches everyone before it.
    last = names[-1]
    seen = await asyncio.gather(*(recv_until(socks[n], lambda m: m.get("type") == "user:join" and m.get("from") == last)
                                  for n in names[:-1]))
    check(all(s is not None for s in seen), "direct: every user on every node sees the last join")
    for n in names:
        others = [socks[o] for o in names if o != n]
        check(await say_and_hear(socks[n], n, f"hi from {n}", others), f"direct: {n}'s message reaches users on the other nodes")
    await socks[names[0]].send(json.dumps({"type": "msg", "text": f"/w {names[1]} secret"}))
    m = await recv_until(socks[names[1]], lambda m: m.get("text") == "secret")
    check(m is not None and m.get("meta") == "whisper", "direct: a whisper crosses nodes")
    await socks[names[2]].close()
    m = await recv_until(socks[names[0]], lambda m: m.get("type") == "user:exit" and m.get("from") == names[2])
    check(m is not None, "direct: an exit on one node is seen on another")
    for n in names:
        if n != names[2]:
            await socks[n].close()


async def failover(nodes, http_ports, nginx_port, victim):
    """Users on every node; kill -9 `victim`; everyone reconnects and talks again."""
    users = {}
    for i in range(9):
        name = f"f{i}"
        port = http_ports[i % len(http_ports)]
        users[name] = {"port": port, "ws": await websockets.connect(f"ws://127.0.0.1:{port}/ws?u={name}")}
    ok = await say_and_hear(users["f0"]["ws"], "f0", "before", [u["ws"] for n, u in users.items() if n != "f0"])
    check(ok, "failover: everyone hears each other before the kill")

    victim_port = http_ports[victim]
    nodes[victim].stop(sig=9)
    survivors = [n for i, n in enumerate(nodes) if i != victim]
    gone = all(n.wait_line(lambda l: "is gone" in l, 30) for n in survivors)
    check(gone, "failover: every survivor hears that the node is gone")

    # Every socket that was on the victim, or relayed to a Replica there, is closed: 1012 for
    # the relayed ones. The others stay open.
    codes = {}
    for name, u in users.items():
        ws = u["ws"]
        if u["port"] == victim_port:
            try:
                await asyncio.wait_for(ws.wait_closed(), 30)
            except asyncio.TimeoutError:
                pass
            codes[name] = "victim" if ws.closed else "still-open"
            continue
        # Survivor-side sockets: closed with 1012 iff their Replica was on the victim; wait a
        # little for the close to arrive, then read the state.
        try:
            await asyncio.wait_for(ws.wait_closed(), 3)
        except asyncio.TimeoutError:
            pass
        codes[name] = ws.close_code if ws.closed else "open"
    check(all(c == "victim" for n, c in codes.items() if users[n]["port"] == victim_port),
          f"failover: clients of the dead node lost their sockets: {codes}")
    check(all(c in ("open", 1012) for n, c in codes.items() if users[n]["port"] != victim_port),
          f"failover: survivors' clients are open or closed with 1012 (reconnect): {codes}")

    # Reconnect the closed ones through nginx (the dead node is skipped), then everyone talks.
    for name, u in users.items():
        if codes[name] != "open":
            u["ws"] = await reconnect(f"ws://127.0.0.1:{nginx_port}/ws?u={name}", name)
            u["port"] = nginx_port
    names = sorted(users)
    for n in names:
        others = [users[o]["ws"] for o in names if o != n]
        check(await say_and_hear(users[n]["ws"], n, f"after from {n}", others, 20),
              f"failover: after reconnecting, {n}'s message reaches everyone")
    for u in users.values():
        await u["ws"].close()


async def drain(nodes, http_ports, nginx_port, victim):
    """SIGTERM `victim`: it leaves, closes its own clients with 1001 and exits 0 within the
    drain timeout; everyone reconnects and talks through the remaining node."""
    users = {}
    for i in range(6):
        name = f"s{i}"
        port = http_ports[i % len(http_ports)]
        users[name] = {"port": port, "ws": await websockets.connect(f"ws://127.0.0.1:{port}/ws?u={name}")}
    ok = await say_and_hear(users["s0"]["ws"], "s0", "pre-drain", [u["ws"] for n, u in users.items() if n != "s0"])
    check(ok, "drain: everyone hears each other before the drain")
    start = time.monotonic()
    nodes[victim].proc.send_signal(15)
    code = await asyncio.get_running_loop().run_in_executor(None, lambda: nodes[victim].proc.wait(30))
    took = time.monotonic() - start
    check(code == 0, f"drain: the node exits 0 (code {code}, {took:.1f} s; --drain-timeout is 10 s)")
    others = [n for i, n in enumerate(nodes) if i != victim and n.proc.poll() is None]
    check(all(n.wait_line(lambda l: "is gone" in l and "node%d" % (victim + 1) in l, 30) for n in others),
          "drain: the remaining nodes hear it left")
    victim_port = http_ports[victim]
    for name, u in users.items():
        if u["port"] == victim_port:
            try:
                await asyncio.wait_for(u["ws"].wait_closed(), 10)
            except asyncio.TimeoutError:
                pass
            check(u["ws"].close_code == 1001, f"drain: {name}, a client of the drained node, got 1001 ({u['ws'].close_code})")
    for name, u in users.items():
        if u["ws"].closed:
            u["ws"] = await reconnect(f"ws://127.0.0.1:{nginx_port}/ws?u={name}", name)
    names = sorted(users)
    for n in names:
        others_ws = [users[o]["ws"] for o in names if o != n]
        check(await say_and_hear(users[n]["ws"], n, f"post-drain from {n}", others_ws, 20),
              f"drain: afterwards {n}'s message reaches everyone")
    for u in users.values():
        await u["ws"].close()


def main():
    cp.BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DOG_BIN_DIR", "build/bin")
    tmp = tempfile.mkdtemp(prefix="dog-chat-cluster-")
    nodes, nginx = [], None
    try:
        _, key = cp.keygen(tmp)
        cports = [cp.free_port() for _ in range(3)]
        hports = [cp.free_port() for _ in range(3)]
        for i in range(3):
            args = ["--http", f"127.0.0.1:{hports[i]}", "--bind", f"127.0.0.1:{cports[i]}", "--name", f"node{i + 1}",
                    "--preset", "local", "--cluster-key-file", key, "--limit", "2"]
            if i:
                args += ["--join", f"127.0.0.1:{cports[0]}"]
            nodes.append(cp.Node(args))
            check(nodes[-1].wait_line(lambda l: l.startswith("dog: serving on"), 60), f"node{i + 1} serves")
        check(all(n.wait_line(lambda l: l == "dog: cluster members 3", 60) for n in nodes), "all three see 3 members")
        nport = cp.free_port()
        nginx = start_nginx(tmp, nport, hports)

        import chat_e2e
        asyncio.run(asyncio.wait_for(chat_e2e.scenario(nport), 120))
        check(not chat_e2e.failures, f"the chat end-to-end scenario passes through nginx: {chat_e2e.failures}")
        asyncio.run(asyncio.wait_for(direct_users(hports), 120))
        asyncio.run(asyncio.wait_for(failover(nodes, hports, nport, victim=2), 240))
        asyncio.run(asyncio.wait_for(drain(nodes, hports[:2], nport, victim=1), 240))
    finally:
        print_nginx_log()
        if nginx:
            nginx.terminate()
            try:
                nginx.wait(10)
            except subprocess.TimeoutExpired:
                nginx.kill()
        for n in nodes:
            n.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if retried_connects:
        print(f"note: {len(retried_connects)} reconnects saw a 5xx first and were retried: {retried_connects}")
    print(f"{len(cp.failures)} failed" if cp.failures else "all checks passed")
    sys.exit(1 if cp.failures else 0)


if __name__ == "__main__":
    main()
