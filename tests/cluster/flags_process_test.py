#!/usr/bin/env python3
"""The cluster flag rules on the real dog-chat binary (node/cluster/options.h, issue 11 §1).

keygen prints a key that parses; --bind without a key file, a bad key file, a port in use and an
unreachable --join each end the process non-zero with ONE stderr line (no stack trace, no hang:
a generous bound only catches a hang); DOG_<NAME> environment variables act like flags.
Usage: flags_process_test.py BIN_DIR
"""
import os, socket, subprocess, sys, tempfile

import clusterproc as cp
from clusterproc import check

cp.BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DOG_BIN_DIR", "build/bin")
HANG = 90  # seconds: only to turn a hang into a failure, never a timing assertion


def run(args, env=None):
    try:
        r = subprocess.run([cp.chat()] + args, capture_output=True, text=True, timeout=HANG,
                           env=dict(os.environ, **(env or {})))
        return r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired:
        return None, "", "hung"


def one_line(err):
    lines = [l for l in err.splitlines() if l.strip()]
    return len(lines) == 1 and lines[0].startswith("dog: ")


with tempfile.TemporaryDirectory() as tmp:
    out, key = cp.keygen(tmp)
    check(out.returncode == 0, "keygen exits 0")
    check(len(out.stdout.splitlines()) == 1 and cp.decodes_to_32(out.stdout),
          "keygen prints one base64 line of 32 bytes")
    http = f"127.0.0.1:{cp.free_port()}"

    rc, _, err = run(["--http", http, "--bind", f"127.0.0.1:{cp.free_port()}"])
    check(rc == 2 and one_line(err) and "dog-chat keygen" in err,
          f"--bind without a key file: exit 2, one line saying how to make a key ({rc}: {err!r})")

    rc, _, err = run(["--http", http], env={"DOG_BIND": f"127.0.0.1:{cp.free_port()}"})
    check(rc == 2 and one_line(err), f"DOG_BIND without a key file is refused like --bind ({rc}: {err!r})")

    bad = os.path.join(tmp, "bad.key")
    for name, text in [("not base64", "this is not a key!\n"), ("16-byte key", "AAAAAAAAAAAAAAAAAAAAAA==\n"),
                       ("empty", "")]:
        with open(bad, "w") as f:
            f.write(text)
        rc, _, err = run(["--http", http, "--bind", f"127.0.0.1:{cp.free_port()}", "--cluster-key-file", bad])
        check(rc == 2 and one_line(err) and "terminate" not in err,
              f"{name} key file: exit 2 with one line ({rc}: {err!r})")

    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    rc, _, err = run(["--http", http, "--bind", f"127.0.0.1:{busy.getsockname()[1]}", "--cluster-key-file", key])
    check(rc == 1 and one_line(err), f"cluster port in use: exit 1 with one line ({rc}: {err!r})")

    # A seed that never answers: a bound UDP port nobody reads.
    rc, _, err = run(["--http", http, "--bind", f"127.0.0.1:{cp.free_port()}", "--cluster-key-file", key,
                      "--preset", "local", "--join", f"127.0.0.1:{busy.getsockname()[1]}",
                      "--join-timeout-s", "1"])
    check(rc == 1 and one_line(err), f"unreachable --join: exit 1 with one line ({rc}: {err!r})")

    # The same through the environment, with a flag overriding one variable.
    rc, _, err = run(["--http", http, "--join-timeout-s", "1"],
                     env={"DOG_BIND": f"127.0.0.1:{cp.free_port()}", "DOG_CLUSTER_KEY_FILE": key,
                          "DOG_JOIN": f"127.0.0.1:{busy.getsockname()[1]}", "DOG_JOIN_TIMEOUT_S": "600"})
    check(rc == 1 and one_line(err), f"DOG_* variables configure the node, flags win ({rc}: {err!r})")
    busy.close()

    rc, _, err = run(["--http", http, "--join", "127.0.0.1:1"])
    check(rc == 2 and one_line(err), f"--join without --bind is refused ({rc}: {err!r})")

if cp.failures:
    print(f"{len(cp.failures)} failed", flush=True)
    sys.exit(1)
print("all passed", flush=True)
