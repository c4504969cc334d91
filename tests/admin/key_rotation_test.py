#!/usr/bin/env python3
"""Cluster key rotation with dogctl on three real dog-chat nodes (issue 14): install a new key
everywhere, use it everywhere, remove the old one everywhere, with memberlist/Serf semantics and
no failed probe meanwhile; dogctl refuses `use`/`remove` unless every live member is reached;
each node's key file is rewritten, and a fourth node started from one of them joins.
Usage: key_rotation_test.py BIN_DIR
"""
import json, os, re, tempfile, urllib.request

from adminproc import cp, dogctl, poll, alive_count, finish  # noqa: E402

check = cp.check


def metric(admin, name):
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def key_lines(path):
    with open(path) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


k1 = dogctl(None, "keygen").stdout.strip()
k2 = dogctl(None, "keygen").stdout.strip()
with tempfile.TemporaryDirectory() as tmp:
    files = []
    for i in range(4):
        files.append(os.path.join(tmp, f"n{i + 1}.key"))
        with open(files[-1], "w") as f:
            f.write(k1 + "\n")
    cports = [cp.free_port() for _ in range(4)]
    admins = [f"127.0.0.1:{cp.free_port()}" for _ in range(4)]
    nodes = []

    def start(i, key_file):
        args = ["--http", f"127.0.0.1:{cp.free_port()}", "--bind", f"127.0.0.1:{cports[i]}", "--name", f"n{i + 1}",
                "--preset", "local", "--cluster-key-file", key_file, "--admin", admins[i], "--join-timeout-s", "20"]
        if i > 0:
            args += ["--join", f"127.0.0.1:{cports[0]}"]
        nodes.append(cp.Node(args))

    try:
        for i in range(3):
            start(i, files[i])
        for i in range(3):
            check(poll(lambda: alive_count(admins[i]) == 3), f"n{i + 1} sees 3 alive members")
        all3 = ",".join(admins[:3])
        base = {a: (metric(a, "dog_membership_probe_failures_total"), metric(a, "dog_membership_suspicions_total"))
                for a in admins[:3]}

        r = dogctl(",".join(admins[:2]), "keys", "use", k2)
        check(r.returncode == 1 and "not reached: n3" in r.stderr, f"keys use with a member missing is refused ({r.stderr.strip()})")
        r = dogctl(all3, "keys", "use", k2)
        check(r.returncode == 1 and "not installed" in r.stderr, "keys use before install: refused by every node")

        r = dogctl(all3, "keys", "install", "-", stdin=k2 + "\n")
        check(r.returncode == 0 and r.stdout.count("install done") == 3, "keys install (key from stdin) on 3 nodes")
        lst = dogctl(all3, "keys", "list").stdout.splitlines()
        check(len(lst) == 3 and all(l.split()[1] == "3/3" for l in lst[1:])
              and sorted(l.split()[2] for l in lst[1:]) == ["0/3", "3/3"], f"keys list: 2 keys, one primary ({lst})")
        r = dogctl(all3, "keys", "use", k2)
        check(r.returncode == 0 and r.stdout.count("use done") == 3, "keys use on 3 nodes")
        r = dogctl(all3, "keys", "remove", k2)
        check(r.returncode == 1 and "primary" in r.stderr, "keys remove of the primary is refused")
        r = dogctl(all3, "keys", "remove", k1)
        check(r.returncode == 0 and r.stdout.count("remove done") == 3, "keys remove of the old key on 3 nodes")
        lst = dogctl(all3, "keys", "list").stdout.splitlines()
        check(len(lst) == 2 and lst[1].split()[1:] == ["3/3", "3/3"], f"keys list: one key, primary everywhere ({lst})")
        for i in range(3):
            check(key_lines(files[i]) == [k2], f"n{i + 1}'s key file now holds only the new key")

        # Membership keeps probing under the new key: some more probes, none failed.
        probes = metric(admins[0], "dog_membership_probes_total")
        check(poll(lambda: metric(admins[0], "dog_membership_probes_total") >= probes + 5), "probes continue")
        for i, a in enumerate(admins[:3]):
            now = (metric(a, "dog_membership_probe_failures_total"), metric(a, "dog_membership_suspicions_total"))
            check(now == base[a], f"n{i + 1}: no failed probe or suspicion during the rotation ({base[a]} -> {now})")
            check(alive_count(a) == 3, f"n{i + 1}: 3 alive members after the rotation")

        # A node started from a rewritten key file joins under the new key.
        start(3, files[0])
        check(poll(lambda: alive_count(admins[0]) == 4), "n4 started with n1's rewritten key file joins")
    finally:
        finish(nodes)
