#!/usr/bin/env python3
"""Three dog-chat processes form one cluster (issue 11 §1): node 1 starts it, nodes 2 and 3 join
it; every node reports 3 members ("dog: cluster members N" on stderr at each change) and serves
HTTP; a node stopped with SIGTERM leaves, the others report 2 members, and it exits 0.
Usage: three_nodes_test.py BIN_DIR
"""
import os, sys, tempfile, urllib.request

import clusterproc as cp
from clusterproc import check

cp.BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DOG_BIN_DIR", "build/bin")


def members_is(n):
    return lambda l: l == f"dog: cluster members {n}"


with tempfile.TemporaryDirectory() as tmp:
    _, key = cp.keygen(tmp)
    cports = [cp.free_port() for _ in range(3)]
    hports = [cp.free_port() for _ in range(3)]
    nodes = []
    try:
        for i in range(3):
            args = ["--http", f"127.0.0.1:{hports[i]}", "--bind", f"127.0.0.1:{cports[i]}",
                    "--name", f"n{i + 1}", "--preset", "local", "--cluster-key-file", key]
            if i > 0:
                args += ["--join", f"127.0.0.1:{cports[0]}"]
            nodes.append(cp.Node(args))
        for i, n in enumerate(nodes):
            check(n.wait_line(lambda l: l.startswith("dog: serving on")), f"n{i + 1} serves")
        for i, n in enumerate(nodes):
            check(n.wait_line(members_is(3)), f"n{i + 1} sees 3 members")
        for i in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{hports[i]}/", timeout=10) as r:
                check(r.status == 200, f"n{i + 1} answers HTTP")
        rc = nodes[2].stop()
        check(rc == 0, f"n3 exits 0 on SIGTERM ({rc})")
        for i in range(2):
            check(nodes[i].wait_line(members_is(2)), f"n{i + 1} sees n3 leave (2 members)")
    finally:
        for i, n in enumerate(nodes):
            n.stop()
            if cp.failures:
                print(f"--- n{i + 1} stderr:\n" + "\n".join(n.lines), flush=True)

if cp.failures:
    print(f"{len(cp.failures)} failed", flush=True)
    sys.exit(1)
print("all passed", flush=True)
