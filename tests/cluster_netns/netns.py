"""Network namespaces for the cluster fault tests: a hub with a bridge, one namespace per host
and one for the clients, all on 10.200.88.0/24 and all named dgc<pid>*, so they never collide
with tests/swim_real (dsw<pid>*, 10.200.77.0/24). Everything created here is recorded and
deleted by cleanup(), which the tests call from atexit and from their signal handlers.

    hub   dgc<pid>h : bridge br0
      veth b<i> ── v<i> in host namespace dgc<pid>n<i>, 10.200.88.<i>/24  (i = 1..hosts)
      veth bc   ── vc   in client namespace dgc<pid>c,  10.200.88.100/24

A partition is an nftables table in the host's namespace dropping everything to and from the
other hosts (both directions), while the client address stays reachable.
"""
import ctypes, os, re, subprocess

SUBNET = "10.200.88"
CLIENT_IP = SUBNET + ".100"
PREFIX = "dgc%d" % os.getpid()
HUB = PREFIX + "h"
CLIENT_NS = PREFIX + "c"
created = []
CLONE_NEWNET = 0x40000000


def sh(*argv, check=True):
    r = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
    return r.stdout


def cleanup():
    """Deletes every namespace this process created (their veths and nft tables go with them)."""
    for ns in reversed(created):
        subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
    created.clear()


def sweep_stale():
    """Deletes namespaces an earlier run of these tests left behind when it was SIGKILLed (no
    cleanup ran): names dgc<pid>... whose pid no longer exists. Live runs' namespaces stay."""
    for line in sh("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"dgc(\d+)[hnc]\d*$", name)
        if m and int(m.group(1)) != os.getpid() and not os.path.exists("/proc/" + m.group(1)):
            subprocess.run(["ip", "netns", "del", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)


def _add_ns(name):
    sh("ip", "netns", "add", name)
    created.append(name)
    sh("ip", "-n", name, "link", "set", "lo", "up")


def _attach(ns, hub_end, ns_end, addr):
    sh("ip", "-n", HUB, "link", "add", hub_end, "type", "veth", "peer", "name", ns_end, "netns", ns)
    sh("ip", "-n", HUB, "link", "set", hub_end, "master", "br0")
    sh("ip", "-n", HUB, "link", "set", hub_end, "up")
    sh("ip", "-n", ns, "addr", "add", addr + "/24", "dev", ns_end)
    sh("ip", "-n", ns, "link", "set", ns_end, "up")


def build(hosts):
    """Creates the hub, `hosts` host namespaces and the client namespace; returns host names."""
    _add_ns(HUB)
    sh("ip", "-n", HUB, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", HUB, "link", "set", "br0", "up")
    names = []
    for i in range(1, hosts + 1):
        ns = "%sn%d" % (PREFIX, i)
        _add_ns(ns)
        _attach(ns, "b%d" % i, "v%d" % i, host_ip(i))
        names.append(ns)
    _add_ns(CLIENT_NS)
    _attach(CLIENT_NS, "bc", "vc", CLIENT_IP)
    return names


def host_ip(i):
    return "%s.%d" % (SUBNET, i)


def enter_client_ns():
    """Moves the calling process (its main thread, before it starts others) into the client
    namespace: sockets made afterwards, including the test's WebSockets, live there."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/var/run/netns/" + CLIENT_NS, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into " + CLIENT_NS)
    finally:
        os.close(fd)


def partition(ns, others):
    """Drops every packet between `ns` and the hosts in `others` (IP addresses), both ways."""
    sh("ip", "netns", "exec", ns, "nft", "add", "table", "inet", "dgcpart")
    for chain, hook, field in (("in", "input", "saddr"), ("out", "output", "daddr")):
        sh("ip", "netns", "exec", ns, "nft", "add", "chain", "inet", "dgcpart", chain,
           "{ type filter hook %s priority 0 ; }" % hook)
        for ip in others:
            sh("ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "dgcpart", chain, "ip", field, ip,
               "counter", "drop")


def dropped(ns):
    """Packets the partition table dropped so far (proof that it really cut the host off)."""
    out = sh("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "dgcpart", check=False)
    return sum(int(w.split()[0]) for w in out.split("counter packets ")[1:])


def heal(ns):
    sh("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "dgcpart")
