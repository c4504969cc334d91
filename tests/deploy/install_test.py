#!/usr/bin/env python3
"""dog as a library: `cmake --install` of the build dir into a temporary prefix, then a small app
outside the tree (tests/deploy/install_app/) built against that prefix twice, with
find_package(dog) + dog::dog and with pkg-config, and each binary run: GET / must answer from
a Replica, and SIGTERM must drain it (exit 0).

The app is copied out of the source tree first, so it sees only the installed headers: a
public header that includes a private one fails the compile here.

Usage: install_test.py BUILD_DIR SOURCE_DIR. Every wait is bounded; every process is stopped.
"""
import os, shutil, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from deployproc import Proc, cp, finish, get  # noqa: E402
from clusterproc import check  # noqa: E402


def run(cmd, what, env=None, timeout=300):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    check(r.returncode == 0, what)
    if r.returncode != 0:
        print(" ".join(cmd))
        print(r.stdout[-4000:], r.stderr[-4000:])
    return r


def serve_and_get(binary, label):
    """Starts `binary` on a free port, GETs /, then drains it with SIGTERM."""
    port = cp.free_port()
    node = Proc([binary, "--http", f"127.0.0.1:{port}"])
    try:
        check(node.wait_line(lambda l: l.startswith("dog: serving on"), 60), f"{label}: the app serves")
        status, body = get(f"http://127.0.0.1:{port}/", 30)
        check(status == 200 and body == "hello from an installed dog\n",
              f"{label}: GET / answers from the Replica ({status} {body!r})")
    finally:
        code = node.stop()
    check(code == 0, f"{label}: SIGTERM drains and exits 0 (code {code})")


def main():
    build_dir, source_dir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    tmp = tempfile.mkdtemp(prefix="dog-install-")
    try:
        prefix = os.path.join(tmp, "prefix")
        run(["cmake", "--install", build_dir, "--prefix", prefix], "cmake --install into a temporary prefix")
        for f in ["include/dog/dog.h", "include/dog/http.h", "include/dog/websocket.h",
                  "lib/cmake/dog/dogConfig.cmake", "lib/cmake/dog/dogConfigVersion.cmake",
                  "lib/cmake/dog/dogTargets.cmake", "lib/pkgconfig/dog.pc", "lib/libdog_runtime.a", "bin/dog-chat"]:
            check(os.path.exists(os.path.join(prefix, f)), f"installed {f}")
        private = [f for f in os.listdir(os.path.join(prefix, "include")) if f != "dog"]
        check(not private, f"only include/dog/ is installed as headers ({private})")

        app = os.path.join(tmp, "app")
        shutil.copytree(os.path.join(HERE, "install_app"), app)
        env = dict(os.environ)
        launcher = shutil.which("ccache")
        cmake_args = ["-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={prefix}",
                      "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"]
        if launcher:
            cmake_args.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={launcher}")
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        run(["cmake", "-S", app, "-B", os.path.join(tmp, "b")] + gen + cmake_args, "find_package(dog 0.1) configures")
        run(["cmake", "--build", os.path.join(tmp, "b")], "the app builds against dog::dog")
        serve_and_get(os.path.join(tmp, "b", "hello"), "find_package")

        env["PKG_CONFIG_PATH"] = os.path.join(prefix, "lib", "pkgconfig")
        flags = run(["pkg-config", "--cflags", "--libs", "dog"], "pkg-config knows dog", env=env).stdout.split()
        cxx = ([launcher] if launcher else []) + [os.environ.get("CXX", "c++")]
        run(cxx + ["-std=c++20", "-O1", os.path.join(app, "main.cc"), "-o", os.path.join(tmp, "hello-pc")] + flags,
            "the app builds with pkg-config's flags", env=env)
        serve_and_get(os.path.join(tmp, "hello-pc"), "pkg-config")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
