#!/usr/bin/env python3
"""End-to-end test of dog-chat with a real WebSocket client we did not write (python3-websockets).

Starts build/bin/dog-chat on a free loopback port with limit 2, then checks dog-semantics §7
items 55-60 and the app-level bad-input rules. Every wait is bounded. Exit code 0 = pass.
Usage: chat_e2e.py BIN_DIR
"""
import asyncio, json, os, socket, subprocess, sys, time, urllib.error, urllib.request

import websockets

BIN = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DOG_BIN_DIR", "build/bin")
failures = []

def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

def http(port, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)

async def recv_until(ws, pred, timeout=3.0):
    """Next message (parsed) satisfying pred, or None after timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            raw = await asyncio.wait_for(ws.recv(), max(0.01, end - time.monotonic()))
        except asyncio.TimeoutError:
            return None
        msg = json.loads(raw)
        if pred(msg):
            return msg
    return None

async def drain(ws, seconds=0.3):
    got = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), max(0.01, end - time.monotonic()))))
        except asyncio.TimeoutError:
            break
    return got

async def scenario(port):
    base = f"ws://127.0.0.1:{port}/ws?u="
    # 55: the page, favicon, non-GET.
    status, body, headers = http(port, "/")
    check(status == 200 and "<title>dog | chat demo</title>" in body and headers.get("Content-Type", "").startswith("text/html"), "55 / serves the chat page")
    check(http(port, "/favicon.ico")[0] == 404, "55 /favicon.ico is 404")
    status, body, headers = http(port, "/anything", "POST")
    check(status == 405 and body == "Method not allowed", "55 POST gives 405 Method not allowed")
    check(headers.get("Allow") == "GET, HEAD", f"55 the 405 carries Allow (RFC 9110): {headers.get('Allow')}")

    alice = await websockets.connect(base + "alice")
    bob = await websockets.connect(base + "bob")
    # 56: carol joins (third user, limit 2: a second Replica); everyone else hears user:join.
    carol = await websockets.connect(base + "carol")
    for name, ws in (("alice", alice), ("bob", bob)):
        m = await recv_until(ws, lambda m: m.get("type") == "user:join" and m.get("from") == "carol")
        check(m is not None, f"56 {name} gets user:join from carol")
    # 57: user:list via gossip spans both Replicas.
    await carol.send(json.dumps({"user": "carol", "type": "req:user:list"}))
    m = await recv_until(carol, lambda m: m.get("type") == "user:list")
    check(m is not None and sorted(m["list"]) == ["alice", "bob", "carol"], f"57 user:list has all three users: {m}")
    # 58: a chat message reaches everyone including the sender.
    await alice.send(json.dumps({"user": "alice", "type": "msg", "text": "  hello all  "}))
    for name, ws in (("alice", alice), ("bob", bob), ("carol", carol)):
        m = await recv_until(ws, lambda m: m.get("type") == "user:msg" and m.get("text") == "hello all")
        check(m is not None and m["from"] == "alice", f"58 {name} gets the broadcast")
    # 58: /g stays on alice's Replica (alice and bob), with meta group.
    await alice.send(json.dumps({"user": "alice", "type": "msg", "text": "/g team only"}))
    for name, ws in (("alice", alice), ("bob", bob)):
        m = await recv_until(ws, lambda m: m.get("text") == "team only")
        check(m is not None and m.get("meta") == "group", f"58 /g reaches {name}")
    check(await recv_until(carol, lambda m: m.get("text") == "team only", 0.5) is None, "58 /g does not reach carol")
    # 58: /w reaches carol on the other Replica, and the sender gets the echo.
    await alice.send(json.dumps({"user": "alice", "type": "msg", "text": "/w carol psst"}))
    m = await recv_until(carol, lambda m: m.get("text") == "psst")
    check(m is not None and m.get("meta") == "whisper" and m.get("to") == "carol", "58 /w reaches carol")
    m = await recv_until(alice, lambda m: m.get("text") == "psst")
    check(m is not None and m.get("to") == "carol", "58 /w echoes to the sender")
    check(await recv_until(bob, lambda m: m.get("text") == "psst", 0.5) is None, "58 /w does not reach bob")
    # 60: HTTP routes (each passes through identify like any request).
    await drain(alice); await drain(bob); await drain(carol)
    status, body, _ = http(port, "/broadcast?u=httpuser")
    check(status == 200 and body == "DONE", "60 /broadcast answers DONE")
    for name, ws in (("alice", alice), ("bob", bob), ("carol", carol)):
        m = await recv_until(ws, lambda m: m.get("text") == 'SENT VIA "/broadcast" HTTP route')
        check(m is not None, f"60 /broadcast reaches {name}")
    status, body, _ = http(port, "/whisper?u=httpuser&target=bob")
    check(body == "DONE", "60 /whisper answers DONE")
    m = await recv_until(bob, lambda m: m.get("meta") == "whisper" and m.get("from") == "HTTP")
    check(m is not None and m.get("to") == "bob", "60 /whisper reaches bob")
    status, body, _ = http(port, "/emit?u=httpuser")
    check(body == "DONE", "60 /emit answers DONE")
    emitted = [n for n, ws in (("alice", alice), ("bob", bob), ("carol", carol))
               if any(m.get("text") == 'SENT VIA "/emit" HTTP route' for m in await drain(ws, 0.4))]
    check(emitted in (["alice", "bob"], ["carol"]), f"60 /emit reaches one Replica's sockets: {emitted}")
    status, body, _ = http(port, "/some/path?u=httpuser")
    check(body == 'PATH: "/some/path"' and status == 404, "60 other paths answer PATH (as a 404)")

    # Bad input: the node answers clearly and keeps serving.
    await bob.send("{not json")
    m = await recv_until(bob, lambda m: m.get("type") == "error")
    check(m is not None, "bad input: malformed JSON gets an error message")
    await bob.send(json.dumps({"type": "no-such-type"}))
    m = await recv_until(bob, lambda m: m.get("type") == "error" and "unknown message type" in m.get("error", ""))
    check(m is not None, "bad input: an unhandled message type gets an error message")
    check(http(port, "/ws?u=")[0] == 400, "bad input: an empty request id is 400")
    status, body, _ = http(port, "/ws?u=" + "x" * 300)
    check(status == 400 and "256" in body, "bad input: an over-long request id is 400")
    # Issue 12 item 3: 100,000 spaces (and commands padded with them) once crashed the node
    # through std::regex; chat text is now parsed by hand.
    await bob.send(json.dumps({"type": "msg", "text": " " * 100_000}))
    m = await recv_until(alice, lambda m: m.get("type") == "user:msg" and m.get("from") == "bob", 10)
    check(m is not None and m.get("text") == "", "bad input: a 100,000-space message is trimmed and relayed")
    await bob.send(json.dumps({"type": "msg", "text": "/w" + " " * 100_000 + "alice" + " " * 100_000 + "psst"}))
    m = await recv_until(alice, lambda m: m.get("meta") == "whisper" and m.get("text") == "psst", 10)
    check(m is not None and m.get("to") == "alice", "bad input: a whisper padded with 200,000 spaces still parses")
    await bob.send(json.dumps({"type": "msg", "text": "still alive"}))
    m = await recv_until(alice, lambda m: m.get("text") == "still alive")
    check(m is not None, "bad input: the node keeps serving afterwards")

    # Issue 12 item 9: a client cannot grow the user table with made-up uids.
    for i in range(50):
        await bob.send(json.dumps({"type": "req:connected", "uid": f"ghost-{i}", "user": f"ghost-{i}"}))
    m = await recv_until(alice, lambda m: m.get("type") == "user:connected", 5)
    check(m is not None and m.get("from") == "bob", f"9 req:connected speaks for the socket's own id: {m}")
    await drain(bob, 0.5)
    await bob.send(json.dumps({"type": "req:user:list"}))
    m = await recv_until(bob, lambda m: m.get("type") == "user:list")
    check(m is not None and sorted(m["list"]) == ["alice", "bob", "carol"], f"9 forged uids never join the user list: {m}")

    # Issue 12 item 14: names are percent-decoded; the page encodes them.
    check("encodeURIComponent(NAME)" in http(port, "/")[1], "14 the page percent-encodes the name in the URL")
    jorg = await websockets.connect(base + "J%C3%B6rg%20K")
    m = await recv_until(alice, lambda m: m.get("type") == "user:join", 5)
    check(m is not None and m.get("from") == "J\u00f6rg K", f"14 a percent-encoded name arrives decoded: {m}")
    await jorg.close()
    await recv_until(alice, lambda m: m.get("type") == "user:exit", 5)
    check(http(port, "/ws?u=bad%ZZ")[0] == 400, "14 a malformed escape is 400")
    check(http(port, "/ws?u=a%0Ab")[0] == 400, "14 a control character in a name is 400")

    # 59: on disconnect the others get user:exit.
    await carol.close()
    for name, ws in (("alice", alice), ("bob", bob)):
        m = await recv_until(ws, lambda m: m.get("type") == "user:exit" and m.get("from") == "carol")
        check(m is not None, f"59 {name} gets user:exit for carol")
    await alice.close(); await bob.close()

def main():
    port = free_port()
    proc = subprocess.Popen([os.path.join(BIN, "dog-chat"), "--http", f"127.0.0.1:{port}", "--limit", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        asyncio.run(asyncio.wait_for(scenario(port), 60))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    check(proc.returncode == 0, f"dog-chat exits cleanly on SIGTERM (code {proc.returncode})")
    print(f"{len(failures)} failed" if failures else "all checks passed")
    sys.exit(1 if failures else 0)

if __name__ == "__main__":
    main()
