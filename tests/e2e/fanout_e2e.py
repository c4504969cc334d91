#!/usr/bin/env python3
"""End-to-end test of dog-fanout's contract (issue 13) with python3-websockets.

Single node (default):
  * GET / answers one line of text;
  * every text message reaches every socket of its room, the sender included, as a text frame
    with the same bytes (ASCII, JSON-looking text, UTF-8, 100 KB); nothing else is received;
  * rooms are isolated; no room parameter (or an empty one) is the room `lobby`;
  * a binary message that is not UTF-8 is dropped, a UTF-8 one goes out as text;
  * with --limit 2, five sockets of one room all get every message, held by 3+ Replicas of at
    most 2 sockets each (the admin endpoint's /objects).
--cluster: three nodes (--limit 2); two sockets connected to each node's own port, each sends
  one message and every socket on every node gets all six (Replicas and the Group are spread
  over the nodes, so messages cross nodes); another room on the same nodes stays apart.

Usage: fanout_e2e.py BIN_DIR [--cluster]. Every wait is bounded; every process is stopped.
"""
import asyncio, json, os, sys, tempfile, urllib.request

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cluster"))
import clusterproc as cp  # noqa: E402
from clusterproc import check  # noqa: E402

cp.BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DOG_BIN_DIR", "build/bin")
cp.chat = lambda: os.path.join(cp.BIN_DIR, "dog-fanout")  # Node and keygen run dog-fanout
CLUSTER = "--cluster" in sys.argv
TIMEOUT = 30


async def collect(ws, expected):
    """Receives until `len(expected)` messages arrived (bounded); returns them as received."""
    got = []
    while len(got) < len(expected):
        got.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return got


def same_messages(got, expected):
    return sorted(got, key=repr) == sorted(expected, key=repr)


async def round_trip(senders, everyone, texts):
    """Each sender sends its text; returns, per socket of `everyone`, what it received."""
    receivers = [asyncio.create_task(collect(ws, texts)) for ws in everyone]
    for ws, text in zip(senders, texts):
        await ws.send(text)
    return await asyncio.gather(*receivers)


async def single(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        body = r.read().decode()
    check(r.status == 200 and body.endswith("\n") and body.count("\n") == 1 and "broadcast" in body,
          f"GET / answers one line ({body!r})")

    base = f"ws://127.0.0.1:{port}/ws"
    a = await websockets.connect(base + "?room=r1", max_size=None)
    b = await websockets.connect(base + "?room=r1", max_size=None)
    c = await websockets.connect(base + "?room=r2", max_size=None)
    texts = ["hello", '{"type":"not parsed","n":1}', "grüße 🚀 \"quoted\" \\", "x" * 100_000]
    got_a = await round_trip([a] * len(texts), [a, b], texts)
    check(all(same_messages(g, texts) for g in got_a), "r1: sender and the other socket get the same bytes")
    check(all(isinstance(m, str) for g in got_a for m in g), "every message arrives as a text frame")
    got_c = await round_trip([c], [c], ["only r2"])
    check(got_c == [["only r2"]], "r2 gets its own message only")
    # r1 never sees r2's message: the next thing a and b receive is r1's own marker.
    got = await round_trip([b], [a, b], ["r1 marker"])
    check(got == [["r1 marker"], ["r1 marker"]], "rooms are isolated (r1 saw nothing from r2)")
    # A binary message that is not UTF-8 cannot go out as text (every receiver would close with
    # 1007): it is dropped; a valid one goes out as text. The marker shows what arrived.
    await a.send(b"\xff\xfe not utf-8")
    got = await round_trip([a, b], [a, b], [b"binary but utf-8", "r1 marker 2"])
    check(all(same_messages(g, ["binary but utf-8", "r1 marker 2"]) for g in got),
          f"a non-UTF-8 binary message is dropped, a UTF-8 one relayed as text: {got}")
    check(a.open and b.open, "both sockets stay open")

    lobby1 = await websockets.connect(base)
    lobby2 = await websockets.connect(base + "?room=lobby")
    lobby3 = await websockets.connect(base + "?room=")
    got = await round_trip([lobby1], [lobby1, lobby2, lobby3], ["to the lobby"])
    check(got == [["to the lobby"]] * 3, "no room parameter (or an empty one) is the room lobby")
    for ws in (a, b, c, lobby1, lobby2, lobby3):
        await ws.close()


async def many_replicas(port, admin):
    socks = [await websockets.connect(f"ws://127.0.0.1:{port}/ws?room=big") for _ in range(5)]
    texts = [f"from {i}" for i in range(5)]
    got = await round_trip(socks, socks, texts)
    check(all(same_messages(g, texts) for g in got), "--limit 2, 5 sockets (3+ Replicas): all get all 5")
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/objects?ns=MEMBERS", timeout=10) as r:
        objects = json.loads(r.read())["objects"]
    sockets = sorted(o["sockets"] for o in objects)
    check(len(objects) >= 3 and max(sockets) <= 2 and sum(sockets) == 5,
          f"the room has 3+ Replicas of at most 2 sockets each (admin /objects: {sockets})")
    for ws in socks:
        await ws.close()


async def cluster(ports):
    socks = []
    for p in ports:
        for _ in range(2):
            socks.append(await websockets.connect(f"ws://127.0.0.1:{p}/ws?room=across"))
    other = [await websockets.connect(f"ws://127.0.0.1:{p}/ws?room=elsewhere") for p in ports]
    texts = [f"node{i // 2 + 1} socket{i % 2}" for i in range(len(socks))]
    got = await round_trip(socks, socks, texts)
    for i, g in enumerate(got):
        check(same_messages(g, texts), f"socket {i} on node{i // 2 + 1} gets all six messages")
    got = await round_trip(other[:1], other, ["elsewhere only"])
    check(got == [["elsewhere only"]] * 3, "another room on the same nodes gets only its own message")
    got = await round_trip(socks[-1:], socks, ["across marker"])
    check(got == [["across marker"]] * len(socks), "the first room saw nothing of the other")
    for ws in socks + other:
        await ws.close()


def run_single():
    for limit, scenario in ((None, single), (2, many_replicas)):
        port, admin = cp.free_port(), cp.free_port()
        args = ["--http", f"127.0.0.1:{port}"] + (["--limit", str(limit), "--admin", f"127.0.0.1:{admin}"] if limit else [])
        node = cp.Node(args)
        try:
            check(node.wait_line(lambda l: l.startswith("dog: serving on")), f"dog-fanout {' '.join(args)} serves")
            asyncio.run(scenario(port, admin) if limit else scenario(port))
        finally:
            node.stop()
            if cp.failures:
                print("--- stderr:\n" + "\n".join(node.lines), flush=True)


def run_cluster():
    with tempfile.TemporaryDirectory() as tmp:
        _, key = cp.keygen(tmp)
        cports = [cp.free_port() for _ in range(3)]
        hports = [cp.free_port() for _ in range(3)]
        nodes = []
        try:
            for i in range(3):
                args = ["--http", f"127.0.0.1:{hports[i]}", "--bind", f"127.0.0.1:{cports[i]}", "--limit", "2",
                        "--name", f"n{i + 1}", "--preset", "local", "--cluster-key-file", key]
                if i > 0:
                    args += ["--join", f"127.0.0.1:{cports[0]}"]
                nodes.append(cp.Node(args))
            for i, n in enumerate(nodes):
                check(n.wait_line(lambda l: l == "dog: cluster members 3"), f"n{i + 1} sees 3 members")
            asyncio.run(cluster(hports))
        finally:
            for i, n in enumerate(nodes):
                n.stop()
                if cp.failures:
                    print(f"--- n{i + 1} stderr:\n" + "\n".join(n.lines), flush=True)


run_cluster() if CLUSTER else run_single()
if cp.failures:
    print(f"{len(cp.failures)} failed", flush=True)
    sys.exit(1)
print("all passed", flush=True)
