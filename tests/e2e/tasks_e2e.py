#!/usr/bin/env python3
"""End-to-end test of dog-tasks (issue 12 item 15) with python3-websockets.

Starts build/bin/dog-tasks on a free loopback port with limit 2, connects worker w1 with two
sockets and worker w2 with one, and checks: a job reaches exactly one socket; a worker with a
job is busy until it answers "done"; with every worker busy a job gets 503; job ids are unique
in the pool. Every wait is bounded. Exit code 0 = pass.  Usage: tasks_e2e.py BIN_DIR
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

def post_job(port, body, producer):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/tasks/pool/jobs", data=body.encode(), method="POST",
                                 headers={"Authorization": f"Bearer {producer}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()

async def jobs_seen(sockets, seconds=0.5):
    """(worker, socket index, job) for every job message any socket receives within `seconds`."""
    seen = []
    async def listen(name, idx, ws):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, end - time.monotonic())))
            except asyncio.TimeoutError:
                return
            if msg.get("type") == "job":
                seen.append((name, idx, msg))
    await asyncio.gather(*(listen(n, i, ws) for n, i, ws in sockets))
    return seen

async def scenario(port):
    base = f"ws://127.0.0.1:{port}/tasks/pool/ws?worker="
    w1a = await websockets.connect(base + "w1")
    w1b = await websockets.connect(base + "w1")
    w2 = await websockets.connect(base + "w2")
    sockets = [("w1", 0, w1a), ("w1", 1, w1b), ("w2", 0, w2)]
    by_worker = {"w1": w1a, "w2": w2}

    status, first = post_job(port, "job A", "p1")
    check(status == 200 and first.get("worker") in ("w1", "w2"), f"a job is accepted: {status} {first}")
    seen = await jobs_seen(sockets)
    check(len(seen) == 1 and seen[0][2]["id"] == first.get("id"), f"job A reaches exactly one socket: {seen}")
    busy = first.get("worker")

    status, second = post_job(port, "job B", "p2")
    check(status == 200 and second.get("worker") not in (None, busy), f"a busy worker gets no second job: {status} {second}")
    seen = await jobs_seen(sockets)
    check(len(seen) == 1 and seen[0][0] == second.get("worker"), f"job B reaches one socket of the other worker: {seen}")

    status, third = post_job(port, "job C", "p3")
    check(status == 503, f"with every worker busy a job gets 503: {status} {third}")

    # Any socket of the worker may answer; the answer must name the job in progress.
    await by_worker[busy].send(json.dumps({"type": "done", "id": "no-such-job", "result": 0}))
    await by_worker[busy].send(json.dumps({"type": "done", "id": first["id"], "result": 1}))
    ids = {first["id"], second["id"]}
    freed = None
    for _ in range(50):  # the "done" crosses to the worker's Replica: poll until it is idle
        status, fourth = post_job(port, "job D", "p4")
        if status == 200:
            freed = fourth
            break
        await asyncio.sleep(0.05)
    check(freed is not None and freed.get("worker") == busy, f"after done the worker is idle again: {freed}")
    seen = await jobs_seen(sockets)
    check(len(seen) == 1, f"job D reaches exactly one socket: {seen}")

    # Job ids are unique in the pool, whichever Replica makes them. Producers land on w2's
    # Replica (sticky fill-first, limit 2) until w3 fills it; then a new Replica makes them.
    replicas = {first["id"].rsplit("-", 1)[0]}
    w3 = None
    for i in range(6):
        if i == 3:
            w3 = await websockets.connect(base + "w3")
            sockets.append(("w3", 0, w3))
            by_worker["w3"] = w3
        worker = freed["worker"]
        await by_worker[worker].send(json.dumps({"type": "done", "id": freed["id"], "result": i}))
        ids.add(freed["id"])
        freed = None
        for _ in range(50):
            status, nxt = post_job(port, f"job {i}", f"producer-{i}")
            if status == 200:
                freed = nxt
                break
            await asyncio.sleep(0.05)
        if freed is None:
            break
        check(freed["id"] not in ids, f"job id {freed['id']} is new in the pool")
        replicas.add(freed["id"].rsplit("-", 1)[0])
        await jobs_seen(sockets, 0.2)
    check(freed is not None, "jobs keep flowing")
    check(len(replicas) >= 2, f"job ids came from more than one Replica: {sorted(replicas)}")
    if w3:
        await w3.close()
    for ws in (w1a, w1b, w2):
        await ws.close()

def main():
    port = free_port()
    proc = subprocess.Popen([os.path.join(BIN, "dog-tasks"), "--http", f"127.0.0.1:{port}", "--limit", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        asyncio.run(asyncio.wait_for(scenario(port), 90))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    check(proc.returncode == 0, f"dog-tasks exits cleanly on SIGTERM (code {proc.returncode})")
    print(f"{len(failures)} failed" if failures else "all checks passed")
    sys.exit(1 if failures else 0)

if __name__ == "__main__":
    main()
