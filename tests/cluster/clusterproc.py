"""Shared helpers for the cluster process tests: free ports, keys, nodes with stderr followed."""
import base64, os, socket, subprocess, threading, time

BIN_DIR = None
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def chat():
    return os.path.join(BIN_DIR, "dog-chat")


def free_port():
    """A loopback port free for both TCP and UDP at the time of the call."""
    for _ in range(100):
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port")


def keygen(tmp):
    out = subprocess.run([chat(), "keygen"], capture_output=True, text=True, timeout=30)
    path = os.path.join(tmp, "cluster.key")
    with open(path, "w") as f:
        f.write(out.stdout)
    os.chmod(path, 0o600)
    return out, path


def decodes_to_32(line):
    try:
        return len(base64.b64decode(line.strip(), validate=True)) == 32
    except Exception:
        return False


class Node:
    """A dog-chat process whose stderr lines are collected by a thread."""

    def __init__(self, args, env=None):
        self.lines = []
        self.cv = threading.Condition()
        self.proc = subprocess.Popen([chat()] + args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **(env or {})))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cv:
                self.lines.append(line.rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def wait_line(self, pred, timeout=60):
        """True once a stderr line satisfies pred (bounded; False if the process ends first)."""
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                if any(pred(l) for l in self.lines):
                    return True
                if self.proc.poll() is not None and self.proc.stderr.closed:
                    return False
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(min(left, 0.5))

    def last_members(self):
        with self.cv:
            for l in reversed(self.lines):
                if l.startswith("dog: cluster members "):
                    return int(l.split()[3])
        return None

    def stop(self, sig=15, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
