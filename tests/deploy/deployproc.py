"""Helpers for the deploy tests: tests/cluster/clusterproc.py's followed processes, for any
binary (an installed app, HAProxy), and an HTTP GET that reports instead of raising."""
import os, subprocess, sys, threading, urllib.error, urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cluster"))
import clusterproc as cp  # noqa: E402


class Proc(cp.Node):
    """clusterproc.Node for an arbitrary command line: stderr lines collected, bounded waits."""

    def __init__(self, argv, env=None):  # pylint: disable=super-init-not-called
        self.lines = []
        self.cv = threading.Condition()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **(env or {})))
        threading.Thread(target=self._read, daemon=True).start()


def get(url, timeout=10):
    """(status, body) of a GET; (None, reason) if nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def dog_env_names(binary):
    """The DOG_* variables `binary --help` lists (every flag of a dog app reads DOG_<FLAG>)."""
    import re
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30).stdout
    return set(re.findall(r"Env:(DOG_[A-Z0-9_]+)", out))


def finish():
    """Prints the verdict of every check() and exits 1 if any failed, else 0."""
    print(f"{len(cp.failures)} failed" if cp.failures else "all checks passed")
    sys.exit(1 if cp.failures else 0)
