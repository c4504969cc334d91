"""Shared helpers of the admin process tests: dogctl, bounded polling, the closing report."""
import json, os, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
import clusterproc as cp  # noqa: E402,F401  (the tests use cp.Node, cp.check, cp.free_port)

cp.BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DOG_BIN_DIR", "build/bin")
DOGCTL = os.path.join(cp.BIN_DIR, "dogctl")


def dogctl(admin, *args, env=None, stdin=None):
    cmd = [DOGCTL] + (["--admin", admin] if admin else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, input=stdin,
                          env=dict(os.environ, **(env or {})))


def poll(fn, timeout=60):
    """fn() until truthy (bounded); returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > end:
            return v
        time.sleep(0.1)


def alive_count(admin):
    r = dogctl(admin, "--json", "members")
    return sum(1 for m in json.loads(r.stdout)["members"] if m["state"] == "alive") if r.returncode == 0 else 0


def finish(nodes):
    """Stops every node, prints their logs if anything failed, exits with the verdict."""
    for i, n in enumerate(nodes):
        n.stop()
        if cp.failures:
            print(f"--- n{i + 1} stderr:\n" + "\n".join(n.lines[-40:]), flush=True)
    if cp.failures:
        print(f"{len(cp.failures)} failed", flush=True)
        sys.exit(1)
    print("all passed", flush=True)
