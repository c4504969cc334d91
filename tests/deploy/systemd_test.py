#!/usr/bin/env python3
"""deploy/systemd/ checked without a running systemd:

1. `systemd-analyze verify` accepts dog@.service as dog@dog-chat.service with no warning (the
   only change: ExecStart points at the built binary, which verify requires to exist).
2. `systemd-analyze security --offline=yes --threshold=20`: the hardening keeps the exposure
   score at or below 2.0 (of 10).
3. The stop contract: KillSignal=SIGTERM, Restart=on-failure, TimeoutStopSec above the
   DOG_DRAIN_TIMEOUT of dog-chat.env; every DOG_* variable there is a flag dog-chat reads.
4. dog-chat started with only that environment (addresses moved to free loopback ports, no
   seeds, the key where LoadCredential puts it) serves, and SIGTERM drains it: exit 0 within
   TimeoutStopSec, as systemd would wait.

Usage: systemd_test.py BIN_DIR. Skipped (exit 77) when systemd-analyze is not installed.
"""
import os, re, shutil, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from deployproc import Proc, cp, dog_env_names, finish, get  # noqa: E402
from clusterproc import check  # noqa: E402

UNIT = os.path.join(ROOT, "deploy", "systemd", "dog@.service")
ENV = os.path.join(ROOT, "deploy", "systemd", "dog-chat.env")


def unit_values(text):
    """{key: [values]} of a unit file (comments skipped)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def env_file(path):
    return dict(l.split("=", 1) for l in open(path).read().splitlines() if l.strip() and not l.startswith("#"))


def seconds(v):
    m = re.fullmatch(r"(\d+)(s|min)?", v)
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def main():
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        print("skipped: systemd-analyze is not installed (Debian package systemd)")
        sys.exit(77)
    cp.BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DOG_BIN_DIR", "build/bin")
    tmp = tempfile.mkdtemp(prefix="dog-systemd-")
    try:
        text = open(UNIT).read()
        unit = os.path.join(tmp, "dog@dog-chat.service")
        with open(unit, "w") as f:
            f.write(text.replace("ExecStart=/usr/local/bin/%i", f"ExecStart={os.path.abspath(cp.BIN_DIR)}/%i"))
        r = subprocess.run([analyze, "verify", unit], capture_output=True, text=True, timeout=120)
        complaints = [l for l in (r.stdout + r.stderr).splitlines() if "dog@" in l]
        check(r.returncode == 0 and not complaints, f"systemd-analyze verify: no error or warning ({r.returncode} {complaints})")
        r = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20", unit],
                           capture_output=True, text=True, timeout=120)
        score = [l for l in r.stdout.splitlines() if "Overall exposure level" in l]
        check(r.returncode == 0, f"systemd-analyze security: exposure at most 2.0 ({score})")

        u, env = unit_values(text), env_file(ENV)
        check(u.get("KillSignal") == ["SIGTERM"] and u.get("Restart") == ["on-failure"], "SIGTERM stops, a failure restarts")
        stop_s, drain_s = seconds(u["TimeoutStopSec"][0]), int(env["DOG_DRAIN_TIMEOUT"])
        check(stop_s > drain_s, f"TimeoutStopSec {stop_s} s is above the drain timeout {drain_s} s")
        for k, v in [("DynamicUser", "yes"), ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                     ("PrivateTmp", "yes"), ("CapabilityBoundingSet", ""), ("EnvironmentFile", "/etc/dog/%i.env")]:
            check(u.get(k) == [v], f"{k}={v}")
        unknown = sorted(set(env) - dog_env_names(cp.chat()))
        check(not unknown, f"every variable of dog-chat.env is a dog-chat flag (unknown: {unknown})")

        # The node as the unit runs it: only the environment, no flags.
        _, key = cp.keygen(tmp)
        http, cluster, admin = cp.free_port(), cp.free_port(), cp.free_port()
        run_env = dict(env, DOG_HTTP=f"127.0.0.1:{http}", DOG_BIND=f"127.0.0.1:{cluster}",
                       DOG_ADMIN=f"127.0.0.1:{admin}", DOG_PRESET="local", DOG_CLUSTER_KEY_FILE=key)
        del run_env["DOG_JOIN"]
        node = Proc([cp.chat()], env=run_env)
        try:
            check(node.wait_line(lambda l: l.startswith("dog: serving on"), 60), "dog-chat serves from the environment alone")
            status, _ = get(f"http://127.0.0.1:{http}/")
            check(status == 200, f"its page answers ({status})")
            status, body = get(f"http://127.0.0.1:{admin}/readyz")
            check(status == 200, f"its admin /readyz answers 200 ({status} {body!r})")
            node.proc.send_signal(15)
            try:
                code = node.proc.wait(stop_s)
            except subprocess.TimeoutExpired:
                code = "still running"
            check(code == 0, f"SIGTERM drains it within TimeoutStopSec: exit {code}")
        finally:
            node.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
