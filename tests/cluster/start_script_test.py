#!/usr/bin/env python3
"""scripts/start.sh end to end (issue 11 §4): three dog-chat nodes behind a real nginx.

Runs `scripts/start.sh --no-build` on free ports, waits for the URL it prints, then through
nginx: the page answers, requests reach more than one node (round robin, no stickiness), and two
WebSocket users see each other's messages. Ctrl-C (SIGINT to the script's process group) must
stop everything: no process of the group survives and the temporary folder is removed.
Exit 77 (skipped) without nginx. Usage: start_script_test.py BIN_DIR SOURCE_DIR
"""
import asyncio, json, os, re, shutil, signal, socket, subprocess, sys, threading, time, urllib.request

import websockets

import clusterproc as cp
from clusterproc import check

cp.BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DOG_BIN_DIR", "build/bin")
SRC = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("DOG_SOURCE_DIR", ".")
if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
    print("nginx is not installed (scripts/setup.sh installs it): skipped", flush=True)
    sys.exit(77)


def free_run(n):
    """A base port p with p..p+n-1 free for TCP and UDP (checked, not reserved)."""
    for _ in range(200):
        base = cp.free_port()
        ok = True
        for p in range(base, base + n):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                s = socket.socket(socket.AF_INET, kind)
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                finally:
                    s.close()
        if ok and base + n < 65536:
            return base
    raise RuntimeError("no free port run")


http_base = free_run(4)
cluster_base = free_run(3)
admin_base = free_run(3)
out = []
cv = threading.Condition()
proc = subprocess.Popen([os.path.join(SRC, "scripts/start.sh"), "--no-build", "--port", str(http_base),
                         "--cluster-port", str(cluster_base), "--admin-port", str(admin_base)],
                        cwd=SRC, env=dict(os.environ, DOG_CHAT_BIN=cp.chat()), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                        start_new_session=True,
                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def reader():
    for line in proc.stdout:
        with cv:
            out.append(line.rstrip("\n"))
            cv.notify_all()


threading.Thread(target=reader, daemon=True).start()


def wait_out(pattern, timeout=120):
    end = time.monotonic() + timeout
    with cv:
        while time.monotonic() < end:
            for l in out:
                m = re.search(pattern, l)
                if m:
                    return m
            if proc.poll() is not None:
                return None
            cv.wait(0.5)
    return None


def get(path):
    with urllib.request.urlopen(f"http://127.0.0.1:{http_base}{path}", timeout=10) as r:
        return r.status, r.read()


async def chat():
    url = f"ws://127.0.0.1:{http_base}/ws?u="
    async with websockets.connect(url + "ann") as ann, websockets.connect(url + "ben") as ben:
        await ann.send(json.dumps({"type": "msg", "text": "hello from ann"}))
        end = time.monotonic() + 30
        seen = []
        while time.monotonic() < end:
            try:
                msg = json.loads(await asyncio.wait_for(ben.recv(), end - time.monotonic()))
            except asyncio.TimeoutError:
                break
            seen.append(msg)
            if msg.get("type") == "user:msg" and msg.get("text") == "hello from ann":
                return True
        print("ben saw:", seen, flush=True)
    return False


tmpdir = None
try:
    check(wait_out(r"open http://127\.0\.0\.1:%d" % http_base) is not None, "start.sh prints the URL")
    m = wait_out(r"logs +(\S+)/node\*\.log")
    tmpdir = m.group(1) if m else None
    check(tmpdir is not None and os.path.isdir(tmpdir), "start.sh names its temporary folder")
    for i in range(1, 4):
        check(wait_out(r"node%d +http://127\.0\.0\.1:%d" % (i, http_base + i)) is not None, f"start.sh lists node{i}")
    check(all(urllib.request.urlopen(f"http://127.0.0.1:{admin_base + i}/readyz", timeout=10).read() == b"ready\n"
              for i in range(3)), "every node's admin endpoint (--admin) answers /readyz: ready")
    status, page = get("/")
    check(status == 200 and len(page) > 0, "nginx serves the chat page")
    check(all(urllib.request.urlopen(f"http://127.0.0.1:{http_base + i}/", timeout=10).status == 200
              for i in range(1, 4)), "every node serves directly")
    check(asyncio.run(chat()), "two WebSocket users through nginx see each other's messages")
finally:
    pgid = proc.pid
    try:
        os.killpg(pgid, signal.SIGINT)  # what Ctrl-C does in a terminal
    except ProcessLookupError:
        pass
    try:
        rc = proc.wait(60)
    except subprocess.TimeoutExpired:
        rc = None
        os.killpg(pgid, signal.SIGKILL)
    check(rc is not None, f"start.sh exits after Ctrl-C ({rc})")
    gone = False
    for _ in range(100):  # the group empties as its members are reaped
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            gone = True
            break
        time.sleep(0.1)
    check(gone, "no node, nginx or helper of start.sh survives Ctrl-C")
    check(tmpdir is None or not os.path.exists(tmpdir), "the temporary folder is removed")
    if cp.failures:
        print("--- start.sh output:\n" + "\n".join(out), flush=True)

if cp.failures:
    print(f"{len(cp.failures)} failed", flush=True)
    sys.exit(1)
print("all passed", flush=True)
