#!/usr/bin/env python3
"""--config, --print-config and --log-format on the real dog-chat binary (node/ops/, issue 14).

--print-config shows a file's values under DOG_* and flags and exits 0; its output, given back
to --config, prints the same; a refused file ends the process with exit 2 and ONE stderr line
naming the file and the key; a node started from a file serves where the file says, and with
--log-format json every stderr line is a JSON object with an `event` (serving, draining, drained);
two nodes from files log member_joined, then member_dead and member_gone after a kill -9.
A generous bound only turns a hang into a failure; no timing is asserted.
Usage: config_process_test.py BIN_DIR
"""
import json, os, signal, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
from clusterproc import check, failures, free_port  # noqa: E402

BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DOG_BIN_DIR", "build/bin")
CHAT = os.path.join(BIN_DIR, "dog-chat")
HANG = 60


def run(args, env=None):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOG_")}
    try:
        r = subprocess.run([CHAT] + args, capture_output=True, text=True, timeout=HANG, env=dict(clean, **(env or {})))
        return r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired:
        return None, "", "hung"


def lines(text):
    return [l for l in text.splitlines() if l.strip()]


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


with tempfile.TemporaryDirectory() as tmp:
    cfg = write(os.path.join(tmp, "dog.toml"),
                '# a node\nhttp = "127.0.0.1:9"\nlimit = 3\ndrain-timeout = 7\njoin = ["10.0.0.1:7946", "10.0.0.2:7946"]\n'
                'preset = "wan"\nlog-format = "logfmt"\n')

    rc, out, err = run(["--config", cfg, "--print-config"])
    check(rc == 0 and err == "", f"--print-config exits 0 and logs nothing ({rc}: {err!r})")
    for want in ['http = "127.0.0.1:9"', "limit = 3", "drain-timeout = 7", 'join = ["10.0.0.1:7946", "10.0.0.2:7946"]',
                 'preset = "wan"', 'log-format = "logfmt"', "max-objects = 100000"]:
        check(want + "\n" in out, f"--print-config shows {want}")

    again = write(os.path.join(tmp, "again.toml"), out)
    rc2, out2, _ = run(["--config", again, "--print-config"])
    check(rc2 == 0 and out2 == out, "the printed configuration, loaded with --config, prints the same")

    _, out, _ = run(["--config", cfg, "--print-config"], env={"DOG_LIMIT": "4"})
    check("limit = 4\n" in out, "DOG_LIMIT wins over the file")
    _, out, _ = run(["--config", cfg, "--print-config", "--limit", "5"], env={"DOG_LIMIT": "4"})
    check("limit = 5\n" in out, "--limit wins over DOG_LIMIT and the file")
    _, out, _ = run(["--print-config"], env={"DOG_CONFIG": cfg})
    check("limit = 3\n" in out, "DOG_CONFIG names the file like --config")

    for name, text, key in [("unknown key", "limt = 3\n", "limt"), ("wrong type", 'limit = "3"\n', "limit"),
                            ("out of range", "drain-timeout = 0\n", "drain-timeout"),
                            ("underscore", "drain_timeout = 3\n", "drain_timeout")]:
        bad = write(os.path.join(tmp, "bad.toml"), text)
        rc, out, err = run(["--config", bad, "--print-config"])
        ls = lines(err)
        check(rc == 2 and out == "" and len(ls) == 1 and ls[0].startswith("dog: " + bad + ":1: key \"" + key + "\"")
              and "terminate" not in err, f"{name}: exit 2 with one line naming file, line and key ({rc}: {err!r})")
    bad = write(os.path.join(tmp, "bad.toml"), "limit = \n")
    rc, _, err = run(["--config", bad])
    check(rc == 2 and len(lines(err)) == 1 and "TOML syntax error" in err, f"syntax error: one line ({rc}: {err!r})")
    rc, _, err = run(["--config", os.path.join(tmp, "missing.toml")])
    check(rc == 2 and len(lines(err)) == 1 and "cannot read" in err, f"missing file: one line ({rc}: {err!r})")
    bad = write(os.path.join(tmp, "bad.toml"), "limt = 3\n")
    rc, _, err = run(["--config", bad, "--log-format", "json"])
    ok = rc == 2 and len(lines(err)) == 1
    rec = json.loads(err) if ok else {}
    check(ok and rec.get("event") == "config_refused" and rec.get("key") == "limt" and rec.get("level") == "error",
          f"with --log-format json the refusal is one JSON record ({rc}: {err!r})")

    # A node from a file, logging JSON: it serves where the file says and drains on SIGTERM.
    port = free_port()
    node_cfg = write(os.path.join(tmp, "node.toml"), f'http = "127.0.0.1:{port}"\nlog-format = "json"\n')
    log_path = os.path.join(tmp, "node.log")
    with open(log_path, "w") as log:
        p = subprocess.Popen([CHAT, "--config", node_cfg], stderr=log, stdout=subprocess.DEVNULL)
    end = time.monotonic() + HANG
    served = False
    while time.monotonic() < end and p.poll() is None and not served:
        served = '"event":"serving"' in open(log_path).read()
        time.sleep(0.05)
    check(served, "the node from the file logs a serving event")
    if served:
        with socket.create_connection(("127.0.0.1", port), timeout=HANG) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            check(s.recv(64).startswith(b"HTTP/1.1 200"), "it serves on the file's --http")
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=HANG)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
    recs = []
    for l in lines(open(log_path).read()):
        try:
            recs.append(json.loads(l))
        except ValueError:
            recs.append({"unparsed": l})
    events = [r.get("event") for r in recs]
    check(rc == 0 and all("ts" in r and "level" in r and "event" in r and "msg" in r for r in recs),
          f"exit 0, every stderr line a JSON record with ts, level, event, msg ({rc}: {recs})")
    check(events[:1] == ["serving"] and "draining" in events and events[-1] == "drained",
          f"events serving, draining, drained ({events})")

    # Membership events as JSON: two nodes, the second killed with -9; the survivor logs that
    # it joined, then suspected or dead, then gone (skipped in a build without the cluster).
    if "--bind" in run(["--help"])[1]:
        key = write(os.path.join(tmp, "cluster.key"), run(["keygen"])[1])
        seed = f"127.0.0.1:{free_port()}"
        logs, procs = [], []
        for i in range(2):
            cfg_i = write(os.path.join(tmp, f"n{i}.toml"),
                          f'http = "127.0.0.1:{free_port()}"\nbind = "{seed if i == 0 else "127.0.0.1:%d" % free_port()}"\n'
                          f'cluster-key-file = "{key}"\npreset = "local"\nname = "n{i}"\nlog-format = "json"\n'
                          + (f'join = ["{seed}"]\n' if i else ""))
            logs.append(os.path.join(tmp, f"n{i}.log"))
            with open(logs[-1], "w") as log:
                procs.append(subprocess.Popen([CHAT, "--config", cfg_i], stderr=log, stdout=subprocess.DEVNULL))

        def events(i):
            out = []
            for l in lines(open(logs[i]).read()):
                try:
                    out.append(json.loads(l))
                except ValueError:
                    out.append({"event": "UNPARSED " + l})
            return out

        def wait_event(i, pred):
            end = time.monotonic() + HANG
            while time.monotonic() < end and procs[i].poll() is None:
                if any(pred(r) for r in events(i)):
                    return True
                time.sleep(0.05)
            return False

        check(wait_event(0, lambda r: r.get("event") == "member_joined" and r.get("node") == "n1"),
              "the seed logs member_joined for n1")
        procs[1].kill()
        procs[1].wait()
        check(wait_event(0, lambda r: r.get("event") == "member_gone" and r.get("node") == "n1"),
              "after kill -9 the seed logs member_gone for n1")
        evs = [r.get("event") for r in events(0)]
        check("member_dead" in evs and "UNPARSED" not in " ".join(map(str, evs)),
              f"the seed logged member_dead, every line JSON ({evs})")
        procs[0].send_signal(signal.SIGTERM)
        try:
            procs[0].wait(timeout=HANG)
        except subprocess.TimeoutExpired:
            procs[0].kill()
            procs[0].wait()

if failures:
    print(f"{len(failures)} failed", flush=True)
    sys.exit(1)
print("all passed", flush=True)
