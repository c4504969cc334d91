"""Shared by bench/routed and bench/failover: start N dog-bench-app nodes joined on 127.0.0.1
(a fresh key), a real nginx in front of them (deploy/nginx/, as scripts/start.sh renders it),
and stop every process it started, whatever happens (use `with Procs() as procs:`).

Ports are picked free at start; logs go to the caller's temporary folder.
"""
import json, os, shutil, signal, socket, subprocess, sys, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(tag, *a):
    print(f"{tag}:", *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_listening(port, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


def wait_for_line(path, text, proc, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        with open(path, errors="replace") as f:
            if text in f.read():
                return
        if proc.poll() is not None:
            raise RuntimeError(f"{path}: process exited {proc.returncode}:\n{open(path).read()}")
        time.sleep(0.05)
    raise RuntimeError(f"{path}: no '{text}' within {timeout}s")


def get_json(port, path, timeout=5.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return json.loads(r.read())


def get_text(port, path, timeout=5.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.read().decode()


class Procs:
    """Every process a benchmark starts; all are killed (and reaped) on exit."""

    def __init__(self):
        self.procs = []

    def spawn(self, argv, log_path=None, stdin=subprocess.DEVNULL, **kw):
        out = open(log_path, "w") if log_path else kw.pop("stdout", subprocess.DEVNULL)
        # Own process group: killing the group also ends children (nginx's worker).
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
                             stdin=stdin, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def __enter__(self):
        # SIGTERM (and SIGINT) unwind through __exit__ like an error would.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        return False


class Node:
    def __init__(self, name, http_port, cluster_port, proc, log_path):
        self.name, self.http, self.cluster, self.proc, self.log = name, http_port, cluster_port, proc, log_path


def start_nodes(procs, tmp, app, n, preset="local", extra=(), cpus=None):
    """Starts `n` joined nodes node1..nodeN; returns them once each serves HTTP."""
    key = os.path.join(tmp, "cluster.key")
    with open(key, "w") as f:
        f.write(subprocess.run([app, "keygen"], capture_output=True, text=True, check=True).stdout)
    os.chmod(key, 0o600)
    nodes = []
    seed = None
    for i in range(1, n + 1):
        hp, cp = free_port(), free_port()
        argv = [app, "--http", f"127.0.0.1:{hp}", "--bind", f"127.0.0.1:{cp}", "--name", f"node{i}",
                "--preset", preset, "--cluster-key-file", key, *extra]
        if seed:
            argv += ["--join", seed]
        if cpus:
            argv = ["taskset", "-c", cpus] + argv
        path = os.path.join(tmp, f"node{i}.log")
        p = procs.spawn(argv, path, preexec_fn=raise_nofile)
        nodes.append(Node(f"node{i}", hp, cp, p, path))
        if i == 1:
            seed = f"127.0.0.1:{cp}"
            wait_for_line(path, "dog: serving on", p)
    for nd in nodes[1:]:
        wait_for_line(nd.log, "dog: serving on", nd.proc)
    # Every node sees every member before the benchmark starts.
    for nd in nodes:
        wait_for_line(nd.log, f"dog: cluster members {n}", nd.proc)
    return nodes


def raise_nofile():
    """preexec_fn: the soft descriptor limit up to the hard one (20,000 here)."""
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_single(procs, tmp, app, extra=(), cpus=None, name="single"):
    hp = free_port()
    argv = [app, "--http", f"127.0.0.1:{hp}", *extra]
    if cpus:
        argv = ["taskset", "-c", cpus] + argv
    path = os.path.join(tmp, f"{name}.log")
    p = procs.spawn(argv, path, preexec_fn=raise_nofile)
    wait_for_line(path, "dog: serving on", p)
    return Node(name, hp, None, p, path)


def start_nginx(procs, tmp, http_ports, cpus=None):
    """nginx from deploy/nginx/ in front of `http_ports`; returns (port, process)."""
    port = free_port()
    d = os.path.join(tmp, "nginx")
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    shutil.copy(os.path.join(ROOT, "deploy/nginx/nginx-local.conf"), os.path.join(d, "nginx.conf"))
    servers = "".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=5s; " for p in http_ports)
    conf = open(os.path.join(ROOT, "deploy/nginx/dog.conf.template")).read()
    conf = conf.replace("${DOG_LISTEN}", f"127.0.0.1:{port}").replace("${DOG_UPSTREAM_SERVERS}", servers)
    with open(os.path.join(d, "dog.conf"), "w") as f:
        f.write(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    argv = [nginx, "-p", d, "-c", os.path.join(d, "nginx.conf"), "-e", "stderr"]
    if cpus:
        argv = ["taskset", "-c", cpus] + argv
    p = procs.spawn(argv, os.path.join(tmp, "nginx.log"))
    wait_listening(port)
    return port, p


def stop_nginx(p):
    """Graceful: the master reaps its worker (a SIGKILLed master would orphan it)."""
    if p.poll() is None:
        p.send_signal(signal.SIGQUIT)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
