#!/usr/bin/env python3
"""deploy/kubernetes/ and deploy/helm/dog/, validated offline (no cluster, no kubectl, no helm).

The plain manifest and the chart rendered by tests/deploy/helmlite (Go's text/template with
Sprig, as Helm renders) in four value sets go through one checker of what dog needs from them:
objects well formed (apiVersion, kind, metadata.name; known API groups), selectors that match
the pod labels, a headless Service publishing not-ready pods with the cluster port on UDP and
TCP, StatefulSet.serviceName naming it, DOG_JOIN seeds that are the StatefulSet's own pod DNS
names, the flags' ports equal to the declared container ports, readiness on /readyz and
liveness on /healthz of the admin port (which no Service exposes), a startup budget above the
join timeout, terminationGracePeriodSeconds above preStop + drain timeout, the key file inside
a read-only Secret volume, non-root, a PodDisruptionBudget, and every DOG_* variable a flag
that dog-chat reads. Not covered: the Kubernetes API schema beyond these fields, admission,
DNS and scheduling (no cluster here).

Usage: kubernetes_test.py BIN_DIR BUILD_DIR. The chart part needs Debian's golang-go and
golang-github-masterminds-sprig-dev (scripts/setup.sh); without them it exits 77 (skipped)
after checking the plain manifest.
"""
import base64, os, re, shutil, subprocess, sys, tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from deployproc import cp, dog_env_names, finish  # noqa: E402
from clusterproc import check  # noqa: E402

KNOWN_API = {("v1", "Service"), ("v1", "Secret"), ("apps/v1", "StatefulSet"), ("policy/v1", "PodDisruptionBudget"),
             ("networking.k8s.io/v1", "NetworkPolicy")}
GOPATH_DEBIAN = "/usr/share/gocode"


def subset(sel, labels):
    return bool(sel) and all(labels.get(k) == v for k, v in sel.items())


def port_of(hostport):
    return int(hostport.rsplit(":", 1)[1])


def check_objects(docs, label, env_names, expect_replicas=None, expect_seeds=None, expect_policy=True):
    docs = [d for d in docs if d]
    for d in docs:
        ok = d.get("apiVersion") and d.get("kind") and (d.get("metadata") or {}).get("name")
        check(bool(ok) and (d["apiVersion"], d["kind"]) in KNOWN_API,
              f"{label}: {d.get('kind')} {(d.get('metadata') or {}).get('name')} is well formed and a known API")
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], []).append(d)
    sts_list = kinds.get("StatefulSet", [])
    check(len(sts_list) == 1, f"{label}: one StatefulSet")
    if len(sts_list) != 1:
        return
    sts = sts_list[0]
    spec, pod = sts["spec"], sts["spec"]["template"]
    labels = pod["metadata"]["labels"]
    services = kinds.get("Service", [])
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    balancer = [s for s in services if s["spec"].get("clusterIP") != "None"]
    check(len(headless) == 1 and len(balancer) == 1, f"{label}: a headless Service and a Service for clients")
    if len(headless) != 1 or len(balancer) != 1:
        return
    hl, lb = headless[0], balancer[0]
    check(spec["serviceName"] == hl["metadata"]["name"], f"{label}: StatefulSet.serviceName is the headless Service")
    check(hl["spec"].get("publishNotReadyAddresses") is True, f"{label}: not-ready pods are in DNS (they must join first)")
    check(subset(spec["selector"]["matchLabels"], labels), f"{label}: the StatefulSet selector matches its pods")
    check(all(subset(s["spec"]["selector"], labels) for s in services), f"{label}: both Services select the pods")
    if expect_replicas is not None:
        check(spec["replicas"] == expect_replicas, f"{label}: {expect_replicas} replicas ({spec['replicas']})")

    c = pod["spec"]["containers"][0]
    env_list = c.get("env", [])
    env = {e["name"]: e.get("value") for e in env_list}
    seen = set()
    for e in env_list:
        refs = re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e.get("value") or "")
        check(all(r in seen for r in refs), f"{label}: {e['name']} refers only to variables defined before it {refs}")
        seen.add(e["name"])
    unknown = sorted(n for n in env if n.startswith("DOG_") and n not in env_names)
    check(not unknown, f"{label}: every DOG_* variable is a dog-chat flag (unknown: {unknown})")

    ports = {p["name"]: p for p in c["ports"]}
    cluster = port_of(env["DOG_BIND"])
    check(port_of(env["DOG_HTTP"]) == ports["http"]["containerPort"], f"{label}: DOG_HTTP's port is the http port")
    check(ports["cluster-udp"]["containerPort"] == cluster == ports["cluster-tcp"]["containerPort"]
          and ports["cluster-udp"]["protocol"] == "UDP", f"{label}: the cluster port is declared on UDP and TCP")
    check(port_of(env["DOG_ADVERTISE"]) == cluster and env["DOG_ADVERTISE"].startswith("$(POD_IP)"),
          f"{label}: peers dial the pod IP on the cluster port")
    admin = port_of(env["DOG_ADMIN"])
    check(ports["admin"]["containerPort"] == admin, f"{label}: DOG_ADMIN's port is the admin port")
    hl_ports = {(p["port"], p.get("protocol", "TCP")) for p in hl["spec"]["ports"]}
    check({(cluster, "UDP"), (cluster, "TCP")} <= hl_ports, f"{label}: the headless Service has the cluster port on UDP and TCP")
    lb_targets = {p.get("targetPort") for p in lb["spec"]["ports"]}
    check(lb_targets <= {"http", ports["http"]["containerPort"]}, f"{label}: the client Service targets only the http port ({lb_targets})")
    check(all(p.get("targetPort") not in ("admin", admin) for s in services for p in s["spec"]["ports"]),
          f"{label}: no Service exposes the admin port")
    check(lb["spec"].get("sessionAffinity", "None") == "None", f"{label}: no session affinity")

    def probe(name, path):
        pr = c.get(name) or {}
        g = pr.get("httpGet") or {}
        return g.get("path") == path and g.get("port") in ("admin", admin)
    check(probe("readinessProbe", "/readyz"), f"{label}: readiness is /readyz on the admin port")
    check(probe("livenessProbe", "/healthz"), f"{label}: liveness is /healthz on the admin port")
    sp = c.get("startupProbe") or {}
    budget = sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3)
    check(probe("startupProbe", "/healthz") and budget > float(env["DOG_JOIN_TIMEOUT_S"]),
          f"{label}: the startup probe waits longer ({budget} s) than the join timeout ({env['DOG_JOIN_TIMEOUT_S']} s)")
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    sleep_s = int(pre[1]) if pre[0] == "sleep" else 0
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    check(grace > sleep_s + int(env["DOG_DRAIN_TIMEOUT"]),
          f"{label}: terminationGracePeriodSeconds {grace} > preStop {sleep_s} + drain {env['DOG_DRAIN_TIMEOUT']}")

    seeds = env["DOG_JOIN"].split(",")
    name, hname = sts["metadata"]["name"], hl["metadata"]["name"]
    ok = all(re.fullmatch(rf"{re.escape(name)}-(\d+)\.{re.escape(hname)}:{cluster}", s)
             and int(re.match(rf"{re.escape(name)}-(\d+)", s).group(1)) < spec["replicas"] for s in seeds)
    check(ok and len(seeds) >= 1, f"{label}: DOG_JOIN seeds are this StatefulSet's pods by DNS ({env['DOG_JOIN']})")
    if expect_seeds is not None:
        check(len(seeds) == expect_seeds, f"{label}: {expect_seeds} seeds ({len(seeds)})")

    key_dir, key_file = os.path.split(env["DOG_CLUSTER_KEY_FILE"])
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    kv = [vols[n] for n, m in mounts.items() if m["mountPath"] == key_dir and m.get("readOnly") and n in vols]
    secret = kv[0].get("secret") if kv else None
    check(bool(secret) and any(i["path"] == key_file for i in secret.get("items", [{"path": key_file}])),
          f"{label}: the key file is in a read-only Secret volume ({env['DOG_CLUSTER_KEY_FILE']})")
    check(pod["spec"]["securityContext"].get("runAsNonRoot") is True
          and c["securityContext"].get("allowPrivilegeEscalation") is False, f"{label}: non-root, no privilege escalation")
    pdbs = kinds.get("PodDisruptionBudget", [])
    check(len(pdbs) == 1 and subset(pdbs[0]["spec"]["selector"]["matchLabels"], labels)
          and (pdbs[0]["spec"].get("maxUnavailable") == 1 or "minAvailable" in pdbs[0]["spec"]),
          f"{label}: a PodDisruptionBudget over the pods")
    if expect_policy:
        check_network_policy(kinds.get("NetworkPolicy", []), label, labels, ports)
    else:
        check(not kinds.get("NetworkPolicy"), f"{label}: no NetworkPolicy")
    return secret["secretName"] if secret else None


def check_network_policy(policies, label, labels, ports):
    """One Ingress policy over the pods: http open, the cluster port from the pods only, the admin
    port only from labelled namespaces (never from everywhere, never from a bare pod selector)."""
    check(len(policies) == 1, f"{label}: one NetworkPolicy")
    if len(policies) != 1:
        return
    spec = policies[0]["spec"]
    check(subset(spec["podSelector"].get("matchLabels"), labels) and "Ingress" in spec.get("policyTypes", []),
          f"{label}: the NetworkPolicy selects the pods and filters ingress")

    def names(rule):  # the container port names a rule admits (numbers mapped back to names)
        by_number = {p["containerPort"]: n for n, p in ports.items()}
        return {by_number.get(p.get("port"), p.get("port")) for p in rule.get("ports", [])}
    rules = spec.get("ingress", [])
    admin_rules = [r for r in rules if "admin" in names(r) or not r.get("ports")]
    check(bool(admin_rules) and all(r.get("from") and all(set(f) == {"namespaceSelector"}
                                                          and f["namespaceSelector"].get("matchLabels") for f in r["from"])
                                    for r in admin_rules),
          f"{label}: the admin port is admitted only from namespaces selected by label ({admin_rules})")
    check(any("http" in names(r) and not r.get("from") for r in rules), f"{label}: the http port is open to clients")
    cluster = [r for r in rules if {"cluster-udp", "cluster-tcp"} <= names(r)]
    check(len(cluster) == 1 and all(set(f) == {"podSelector"} and subset(f["podSelector"].get("matchLabels"), labels)
                                    for f in cluster[0].get("from", [{}])),
          f"{label}: the cluster port (UDP and TCP) only from the dog pods")


def build_helmlite(build_dir):
    """Builds tests/deploy/helmlite in GOPATH mode against Debian's Go packages; None if absent."""
    go = shutil.which("go")
    sprig = os.path.join(GOPATH_DEBIAN, "src", "github.com", "Masterminds", "sprig")
    if not go or not os.path.isdir(sprig):
        return None
    work = os.path.join(build_dir, "helmlite")
    gopath = os.path.join(work, "gopath")
    src = os.path.join(gopath, "src", "helmlite")
    os.makedirs(src, exist_ok=True)
    shutil.copy(os.path.join(HERE, "helmlite", "main.go"), src)
    # GOPATH mode does not map ".../v3" import paths to Debian's unversioned folders: link them.
    for mod in ("sprig", "semver"):
        link = os.path.join(gopath, "src", "github.com", "Masterminds", mod, "v3")
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.islink(link):
            os.symlink(os.path.join(GOPATH_DEBIAN, "src", "github.com", "Masterminds", mod), link)
    out = os.path.join(work, "helmlite")
    env = dict(os.environ, GO111MODULE="off", GOPATH=f"{gopath}:{GOPATH_DEBIAN}",
               GOCACHE=os.path.join(work, "gocache"), GOFLAGS="", GOENV="off")
    r = subprocess.run([go, "build", "-o", out, "."], cwd=src, env=env, capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"helmlite builds ({r.stderr.strip()[-500:]})")
    return out if r.returncode == 0 else None


def helm(tool, tmp, values, name="dog"):
    path = os.path.join(tmp, f"values-{len(os.listdir(tmp))}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(values, f)
    r = subprocess.run([tool, "-name", name, "-f", path, os.path.join(ROOT, "deploy", "helm", "dog")],
                       capture_output=True, text=True, timeout=60)
    return r


def main():
    cp.BIN_DIR = sys.argv[1]
    build_dir = os.path.abspath(sys.argv[2])
    env_names = dog_env_names(cp.chat())
    with open(os.path.join(ROOT, "deploy", "kubernetes", "dog-chat.yaml")) as f:
        plain = list(yaml.safe_load_all(f))
    secret = check_objects(plain, "kubernetes/dog-chat.yaml", env_names, expect_replicas=3, expect_seeds=3)
    check(secret == "dog-cluster-key", f"the plain manifest reads the Secret its README makes ({secret})")

    tool = build_helmlite(build_dir)
    if tool is None:
        print("skipped: the Helm chart was not rendered (needs golang-go and golang-github-masterminds-sprig-dev)")
        sys.exit(1 if cp.failures else 77)
    chart = yaml.safe_load(open(os.path.join(ROOT, "deploy", "helm", "dog", "Chart.yaml")))
    check(chart.get("apiVersion") == "v2" and chart.get("name") == "dog"
          and re.fullmatch(r"\d+\.\d+\.\d+", str(chart.get("version"))) and chart.get("appVersion"),
          "Chart.yaml: apiVersion v2, name, semver version, appVersion")
    tmp = tempfile.mkdtemp(prefix="dog-helm-")
    try:
        def rendered(values, name="dog"):
            r = helm(tool, tmp, values, name)
            check(r.returncode == 0, f"helm chart renders with {values} ({r.stderr.strip()[-300:]})")
            return list(yaml.safe_load_all(r.stdout)) if r.returncode == 0 else []

        docs = rendered({"clusterKey": {"existingSecret": "dog-cluster-key"}})
        check(not any(d and d["kind"] == "Secret" for d in docs), "chart, existing Secret: no Secret is made")
        s = check_objects(docs, "chart (defaults)", env_names, expect_replicas=3, expect_seeds=3)
        check(s == "dog-cluster-key", f"chart: the pods read the existing Secret ({s})")

        keys = [base64.b64encode(os.urandom(32)).decode() for _ in range(2)]
        docs = rendered({"replicas": 5, "clusterKey": {"keys": keys},
                         "extraEnv": [{"name": "DOG_LIMIT", "value": "50"}]}, name="chat")
        s = check_objects(docs, "chart (5 replicas, keys from values)", env_names, expect_replicas=5, expect_seeds=3)
        secrets = [d for d in docs if d and d["kind"] == "Secret"]
        data = base64.b64decode(secrets[0]["data"]["cluster.key"]).decode() if secrets else ""
        check(len(secrets) == 1 and secrets[0]["metadata"]["name"] == s and data.split() == keys,
              "chart: the Secret it makes holds the keys, first one first, and the pods mount it")
        sts = [d for d in docs if d and d["kind"] == "StatefulSet"]
        env = {e["name"]: e.get("value") for e in sts[0]["spec"]["template"]["spec"]["containers"][0]["env"]} if sts else {}
        check(env.get("DOG_LIMIT") == "50", "chart: extraEnv reaches the container")

        docs = rendered({"replicas": 1, "clusterKey": {"existingSecret": "k"}, "networkPolicy": {"enabled": False}})
        check_objects(docs, "chart (1 replica, no NetworkPolicy)", env_names, expect_replicas=1, expect_seeds=1,
                      expect_policy=False)

        r = helm(tool, tmp, {})
        check(r.returncode != 0 and "clusterKey" in r.stderr, "chart: rendering without a cluster key is refused")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
