#!/usr/bin/env python3
"""Fails if a Catch2 TEST_CASE name contains ';' or starts with '-'. CTest splits a discovered
test name at ';' (two tests that match nothing, and the suite fails), and catch_discover_tests
passes a name starting with '-' as an option. Usage: lint_test_names.py SOURCE_DIR"""
import os, re, sys

root = sys.argv[1] if len(sys.argv) > 1 else "."
bad = []
pattern = re.compile(r'TEST_CASE\(\s*"((?:[^"\\]|\\.)*)"')
for top in ("tests", "node", "membership", "routing", "rpc", "bench", "examples"):
    for dirpath, _, files in os.walk(os.path.join(root, top)):
        for f in files:
            if not f.endswith((".cc", ".cpp", ".h")):
                continue
            path = os.path.join(dirpath, f)
            with open(path, errors="replace") as fh:
                for n, line in enumerate(fh, 1):
                    for name in pattern.findall(line):
                        if ";" in name or name.startswith("-"):
                            bad.append(f"{os.path.relpath(path, root)}:{n}: {name!r}")
for b in bad:
    print("bad test name:", b)
print(f"{len(bad)} bad test names")
sys.exit(1 if bad else 0)
