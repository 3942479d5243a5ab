"""deploy/kubernetes, validated offline (no cluster): every document
against the Kubernetes API models of Debian's python3-kubernetes, strictly
(every key known to its model, recursively; types right; required fields
present; the API's own rules that the models do not hold, where they bear
on these manifests), and against the server itself: the port it listens
on, the probe paths it serves, the token file it reads and how it opens
it, the options it accepts.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Any, Dict, List, Tuple

import pytest

yaml = pytest.importorskip("yaml", reason="python3-yaml (tools/install-deps.sh)")
k8s = pytest.importorskip("kubernetes.client",
                          reason="python3-kubernetes is not installed (tools/install-deps.sh)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KDIR = os.path.join(ROOT, "deploy", "kubernetes")
MANIFESTS = sorted(glob.glob(os.path.join(KDIR, "*.yaml")))

# (apiVersion, kind) -> the model class name.
KINDS = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("v1", "Secret"): "V1Secret",
}


def _model(name: str) -> Any:
    return getattr(k8s, name)


def check(value: Any, typ: str, where: str, problems: List[str]) -> None:
    """value against the model type string typ (as in openapi_types)."""
    m = re.fullmatch(r"list\[(.+)\]", typ)
    if m:
        if not isinstance(value, list):
            problems.append("%s: a list expected, got %s" % (where, type(value).__name__))
            return
        for i, v in enumerate(value):
            check(v, m.group(1), "%s[%d]" % (where, i), problems)
        return
    m = re.fullmatch(r"dict\(str, (.+)\)", typ)
    if m:
        if not isinstance(value, dict):
            problems.append("%s: a map expected" % where)
            return
        for k, v in value.items():
            if not isinstance(k, str):
                problems.append("%s: key %r is not a string" % (where, k))
            check(v, m.group(1), "%s.%s" % (where, k), problems)
        return
    if typ == "str":
        if not isinstance(value, str):
            problems.append("%s: a string expected, got %r" % (where, value))
    elif typ == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append("%s: an integer expected, got %r" % (where, value))
    elif typ == "bool":
        if not isinstance(value, bool):
            problems.append("%s: a boolean expected, got %r" % (where, value))
    elif typ == "object":
        # IntOrString (ports, maxUnavailable) and free-form values.
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            problems.append("%s: an int or a string expected, got %r" % (where, value))
    elif typ.startswith("V1") or typ.startswith("V2") or typ.startswith("Core"):
        cls = _model(typ)
        if not isinstance(value, dict):
            problems.append("%s: an object (%s) expected" % (where, typ))
            return
        by_json = {j: a for a, j in cls.attribute_map.items()}
        for key, v in value.items():
            if key not in by_json:
                problems.append("%s: unknown field %r for %s" % (where, key, typ))
                continue
            check(v, cls.openapi_types[by_json[key]], "%s.%s" % (where, key), problems)
    else:
        problems.append("%s: type %s is not handled by this validator" % (where, typ))


def load() -> List[Tuple[str, Dict[str, Any]]]:
    docs = []
    for path in MANIFESTS:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    docs.append((os.path.basename(path), doc))
    return docs


def test_there_are_manifests() -> None:
    kinds = sorted(d["kind"] for _, d in load())
    assert kinds == ["Deployment", "PodDisruptionBudget", "Service"], kinds


@pytest.mark.parametrize("name,doc", load(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_document_matches_its_api_model(name: str, doc: Dict[str, Any]) -> None:
    typ = KINDS.get((doc.get("apiVersion"), doc.get("kind")))
    assert typ is not None, "%s: %s/%s is not a kind this validator knows" % (
        name, doc.get("apiVersion"), doc.get("kind"))
    problems: List[str] = []
    check(doc, typ, name, problems)
    assert not problems, "\n".join(problems)
    # Required fields and the enum checks the models make: building the
    # model objects runs their setters' client-side validation (a missing
    # required field is a ValueError).
    api = k8s.ApiClient()
    obj = api._ApiClient__deserialize(doc, typ)   # noqa: SLF001 (the models' own reader)
    assert obj.metadata.name, "%s: no metadata.name" % name


def test_the_strict_validator_refuses_what_it_should() -> None:
    """The checks above can fail: a misspelt field, a wrong type, a field
    of a newer API, a missing required field."""
    for bad, why in [({"spec": {"replica": 3}}, "unknown field 'replica'"),
                     ({"spec": {"replicas": "3"}}, "an integer expected"),
                     ({"spec": {"template": {"spec": {"hostUsers": False, "containers": []}}}},
                      "unknown field 'hostUsers'")]:
        problems: List[str] = []
        doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}
        doc.update(bad)
        check(doc, "V1Deployment", "t", problems)
        assert any(why in p for p in problems), (bad, problems)
    with pytest.raises(ValueError, match="containers"):
        k8s.ApiClient()._ApiClient__deserialize(
            {"spec": {"containers": None}}, "V1PodSpec")


def _deployment() -> Dict[str, Any]:
    return next(d for _, d in load() if d["kind"] == "Deployment")


def _server_source(name: str) -> str:
    with open(os.path.join(ROOT, "src", "http", name)) as f:
        return f.read()


def test_the_manifests_agree_with_the_server() -> None:
    dep = _deployment()
    svc = next(d for _, d in load() if d["kind"] == "Service")
    pdb = next(d for _, d in load() if d["kind"] == "PodDisruptionBudget")
    pod = dep["spec"]["template"]
    c = pod["spec"]["containers"][0]
    args = c["args"]

    # The listening address is the container port, and the Service's.
    listen = args[args.index("--http") + 1]
    host, port = listen.rsplit(":", 1)
    assert host == "0.0.0.0" and "--allow-remote" in args, "a pod must listen beyond loopback"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": int(port)}
    assert svc["spec"]["ports"][0]["targetPort"] in ("http", int(port))

    # Probes: paths the front end serves without a token, on that port.
    routes = _server_source("parse.c")
    for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                        ("startupProbe", "/healthz")]:
        get = c[probe]["httpGet"]
        assert get["path"] == path and get["port"] in ("http", int(port)), (probe, get)
        assert '{ "%s", HR_' % path in routes, "the server does not route %s" % path

    # The token file: the path the server is told, mounted from the Secret
    # as a regular file (subPath: the server opens it with O_NOFOLLOW and a
    # Secret volume's keys are symlinks), read-only, mode 0400.
    token_path = args[args.index("--token-file") + 1]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "tokens")
    assert mount["mountPath"] == token_path and mount.get("readOnly") is True
    vol = next(v for v in pod["spec"]["volumes"] if v["name"] == "tokens")
    assert "O_NOFOLLOW" in _server_source("auth.c")
    item = next(i for i in vol["secret"]["items"] if i["path"] == mount["subPath"])
    assert vol["secret"]["defaultMode"] == 0o400 and item["mode"] == 0o400

    # Every option is one `sandcell serve` accepts: --http and the front
    # end's own that it passes on (src/cli/main.c), or the warm server's
    # (its getopt table in src/server/main.c).  --slots matches two runs
    # per requested core.
    with open(os.path.join(ROOT, "src", "cli", "main.c")) as f:
        cli = f.read()
    # The options `sandcell serve` routes to the front end (its tables)
    # and cmd_serve itself.
    serve = cli[cli.index("static const char *const front_valued"):]
    serve = serve[:serve.index("\n}\n", serve.index("static int cmd_serve("))]
    with open(os.path.join(ROOT, "src", "server", "main.c")) as f:
        warm_opts = set(re.findall(r'\{ "([a-z-]+)", (?:required|no)_argument', f.read()))
    assert "slots" in warm_opts
    for a in args:
        if a.startswith("--"):
            assert '"%s"' % a in serve or a[2:] in warm_opts, "sandcell serve has no option " + a
    cpu = int(c["resources"]["requests"]["cpu"])
    assert int(args[args.index("--slots") + 1]) == 2 * cpu

    # The security context docs/container.md names.
    sc = c["securityContext"]
    assert sc["capabilities"]["add"] == ["SYS_ADMIN"] and sc["procMount"] == "Unmasked"
    assert sc["allowPrivilegeEscalation"] is True   # the API refuses SYS_ADMIN with false
    assert pod["metadata"]["annotations"][
        "container.apparmor.security.beta.kubernetes.io/" + c["name"]] == "unconfined"
    cg = next(m for m in c["volumeMounts"] if m["name"] == "cgroup")
    assert cg["mountPath"] == "/sys/fs/cgroup" and not cg.get("readOnly")

    # Labels: the Service, the PDB and the anti-affinity select these pods.
    labels = pod["metadata"]["labels"]
    for sel in (svc["spec"]["selector"], pdb["spec"]["selector"]["matchLabels"],
                dep["spec"]["selector"]["matchLabels"]):
        assert sel.items() <= labels.items()
    assert svc["spec"]["sessionAffinity"] == "ClientIP"

