#!/usr/bin/env python3
"""deploy/container/Containerfile.

Always (no container engine needed): a lint of the file itself — stages on debian:12, the
runtime stage installs no compiler or -dev package, runs as a non-root user, stops with SIGTERM,
has an exec-form ENTRYPOINT — and the runtime stage's apt packages provide every shared library
the built dog-chat loads (ldd + dpkg -S), so a new library dependency fails here first.

When podman and a local debian:12 base image are there (`scripts/setup.sh --containers`, then
deploy/container/make-base.sh), or with DOG_CONTAINER_TESTS=1 (then their absence fails):
podman builds the Containerfile's runtime stage around the built binary (its `COPY --from=build`
reads a folder holding that binary instead of the compile stage), runs three containers that
form one cluster with a mounted key, GET / answers on each, and `podman stop` (SIGTERM) drains
one: exit code 0, and the others hear it left.

Usage: container_test.py BIN_DIR. Every wait is bounded; every container is removed.
"""
import os, re, shutil, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from deployproc import cp, finish, get  # noqa: E402
from clusterproc import check  # noqa: E402

FILE = os.path.join(ROOT, "deploy", "container", "Containerfile")
# In every debian:12 image (apt needs them), so the runtime stage need not name them.
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}
# A sanitizer build's runtimes: not part of a release image (that build is not run in one).
SANITIZER = re.compile(r"^lib(asan|ubsan|tsan|lsan)\d*$")
# This machine's kernel refuses raised rlimits (no CAP_SYS_RESOURCE) and crun's hybrid cgroups:
# runc with limits at or below ours works (README.md in deploy/container/).
PODMAN = ["podman", "--runtime", "runc"]
RUN_LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000"]


def stages(text):
    """[(from, name, [instructions])] of a Containerfile (continuation lines joined)."""
    out = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        if op.upper() == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            out.append((m.group(1), m.group(2), []))
        elif out:
            out[-1][2].append((op.upper(), rest.strip()))
    return out


def lint(bin_dir):
    st = stages(open(FILE).read())
    names = [s[1] for s in st]
    check(len(st) >= 2 and "build" in names and names[-1] == "runtime", f"multi-stage: build ... runtime last ({names})")
    check(all(f in ["debian:12"] + names for f, _, _ in st), f"stages are on debian:12 or an earlier stage ({[s[0] for s in st]})")
    runtime = dict()
    for op, rest in st[-1][2]:
        runtime.setdefault(op, []).append(rest)
    apt = " ".join(runtime.get("RUN", []))
    pkgs = set(re.findall(r"\b(lib[a-z0-9.+-]+|build-essential|cmake|g\+\+|gcc|clang\S*|ninja-build)\b", apt))
    check(not any(p.endswith("-dev") or p in ("build-essential", "cmake", "g++", "gcc", "ninja-build") for p in pkgs),
          f"the runtime stage installs no compiler or -dev package ({sorted(pkgs)})")
    user = runtime.get("USER", ["root"])[-1].split(":")[0]
    check(user not in ("root", "0"), f"the runtime stage runs as a non-root user ({user})")
    check(runtime.get("STOPSIGNAL") == ["SIGTERM"], "STOPSIGNAL SIGTERM (the drain)")
    check(bool(re.fullmatch(r'\[\s*"[^"]+"\s*\]', (runtime.get("ENTRYPOINT") or [""])[-1])), "ENTRYPOINT in exec form")
    check(any(r.startswith("--from=") for r in runtime.get("COPY", [])), "the runtime stage copies the build's output")
    # Every shared library of the built binary comes from a package the runtime stage installs.
    libs = [l.split("=>")[1].split()[0] for l in subprocess.run(["ldd", os.path.join(bin_dir, "dog-chat")],
            capture_output=True, text=True, timeout=60).stdout.splitlines() if "=>" in l and "/" in l]
    owners = set()
    for lib in libs:
        real = os.path.realpath(lib)  # merged /usr: dpkg may know either spelling
        for path in dict.fromkeys([lib, real, re.sub(r"^/usr/lib/", "/lib/", real)]):
            r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, timeout=60)
            if r.returncode == 0:
                owners.add(r.stdout.split(":")[0])
                break
        else:
            owners.add(f"(no package: {lib})")
    missing = sorted(o for o in owners - BASE_PACKAGES - pkgs if not SANITIZER.match(o))
    check(not missing, f"the runtime stage installs every library dog-chat loads (missing: {missing})")
    return any(SANITIZER.match(o) for o in owners)


def podman(*args, timeout=600):
    return subprocess.run(PODMAN + list(args), capture_output=True, text=True, timeout=timeout)


def logs(name):
    r = podman("logs", name, timeout=60)
    return r.stdout + r.stderr


def wait_log(name, text, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in logs(name):
            return True
        time.sleep(0.2)
    return False


def run_containers(bin_dir):
    if podman("image", "exists", "docker.io/library/debian:12", timeout=60).returncode != 0:
        check(False, "a local debian:12 base image exists (deploy/container/README.md makes one)")
        return
    tmp = tempfile.mkdtemp(prefix="dog-container-")
    names = []
    tag = f"localhost/dog-chat:test-{os.getpid()}"
    try:
        # The runtime stage exactly as the Containerfile has it, but /out comes from this build
        # instead of the `build` stage (which compiles everything again: minutes).
        ctx = os.path.join(tmp, "ctx")
        os.makedirs(os.path.join(ctx, "out", "usr", "local", "bin"))
        shutil.copy(os.path.join(bin_dir, "dog-chat"), os.path.join(ctx, "out", "usr", "local", "bin"))
        text = open(FILE).read()
        runtime = text[text.index("FROM debian:12 AS runtime"):]
        check("COPY --from=build /out/ /" in runtime, "the runtime stage takes /out from the build stage")
        with open(os.path.join(ctx, "Containerfile"), "w") as f:
            f.write(runtime.replace("COPY --from=build /out/ /", "COPY out/ /"))
        r = podman("build", "--network", "host", *RUN_LIMITS, "--pull=never", "-f", os.path.join(ctx, "Containerfile"),
                   "-t", tag, ctx)
        check(r.returncode == 0, "podman builds the runtime stage around the built binary")
        if r.returncode != 0:
            print(r.stdout[-3000:], r.stderr[-3000:])
            return
        _, key = cp.keygen(tmp)
        os.chmod(key, 0o644)  # the image's user (65532) reads it through the bind mount
        cports = [cp.free_port() for _ in range(3)]
        hports = [cp.free_port() for _ in range(3)]
        for i in range(3):
            name = f"dog-test-{os.getpid()}-{i + 1}"
            env = ["-e", f"DOG_HTTP=127.0.0.1:{hports[i]}", "-e", f"DOG_BIND=127.0.0.1:{cports[i]}",
                   "-e", f"DOG_NAME=node{i + 1}", "-e", "DOG_PRESET=local",
                   "-e", "DOG_CLUSTER_KEY_FILE=/etc/dog/key/cluster.key"]
            if i:
                env += ["-e", f"DOG_JOIN=127.0.0.1:{cports[0]}"]
            r = podman("run", "-d", "--name", name, "--network", "host", *RUN_LIMITS,
                       "-v", f"{key}:/etc/dog/key/cluster.key:ro", *env, tag, timeout=120)
            check(r.returncode == 0, f"container {i + 1} starts ({r.stderr.strip()[-200:]})")
            names.append(name)
        check(all(wait_log(n, "dog: cluster members 3") for n in names), "the three containers form one cluster")
        for i, p in enumerate(hports):
            status, _ = get(f"http://127.0.0.1:{p}/")
            check(status == 200, f"container {i + 1} serves the chat page ({status})")
        r = podman("stop", "-t", "40", names[1], timeout=120)
        code = podman("inspect", "-f", "{{.State.ExitCode}}", names[1], timeout=60).stdout.strip()
        check(r.returncode == 0 and code == "0", f"podman stop drains a container: exit code {code}")
        check(all(wait_log(n, "node2 is gone") for n in (names[0], names[2])), "the others hear it left")
    finally:
        for n in names:
            podman("rm", "-f", n, timeout=120)
        podman("rmi", "-f", tag, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    cp.BIN_DIR = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DOG_BIN_DIR", "build/bin")
    sanitized = lint(cp.BIN_DIR)
    forced = os.environ.get("DOG_CONTAINER_TESTS") == "1"
    have_base = shutil.which("podman") and podman("image", "exists", "docker.io/library/debian:12", timeout=60).returncode == 0
    if sanitized and not forced:
        print("note: containers not run: this dog-chat is a sanitizer build (the image takes a release build)")
    elif forced or have_base:
        run_containers(cp.BIN_DIR)
    else:
        print("note: containers not run: no podman or no local debian:12 image (deploy/container/README.md)")
    finish()


if __name__ == "__main__":
    main()
