"""What serves and what is exposed on a real cluster, proven on the rendered manifests
(tests/harness/k8s.py) and the trainer Jobs the launcher builds from them, without a cluster:

- vLLM serves what the catalog says, with an API key only the gateway sends, and the gateway
  can discover its replicas; every probe has an explicit timeout;
- the base needs no CRD and no Kueue; the optional components are complete (Kueue, CA bundle,
  trainer Job settings, registry credentials, ServiceMonitors, KEDA);
- the Ingress and the Gateway API route expose only /v1 and the dashboard (/ui), with TLS.

Without kubectl the tests skip, except under CI=true where they fail: a skip must not hide them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import yaml

from service.gateway.config import GatewaySettings
from tests.harness.k8s import (
    BUILTIN_API_VERSIONS,
    CASE_IDS,
    CASES,
    K8S,
    OVERLAYS,
    api_container,
    catalog,
    config_map,
    containers,
    env_of,
    find,
    kustomize,
    on_top_of,
    one,
    pod_labels,
    pods,
    render,
    selects,
    trainer_jobs,
)

# --- vLLM ------------------------------------------------------------------------------------


def _arg(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_vllm_serves_the_catalog(overlay: str) -> None:
    docs = render(overlay)
    entries = {e.name: e for e in catalog(docs)}
    deployments = [
        d for d in find(docs, "Deployment") if d["metadata"]["labels"]["app.kubernetes.io/name"] == "hone-vllm"
    ]
    assert {d["metadata"]["labels"]["hone.dev/base-model"] for d in deployments} == set(entries)
    for d in deployments:
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        argv, env = c["command"] + c["args"], env_of(docs, c)
        entry = entries[d["metadata"]["labels"]["hone.dev/base-model"]]
        assert c["command"][0] == "python3"  # the vLLM images have no `python`
        assert _arg(argv, "--model") == entry.source and _arg(argv, "--served-model-name") == entry.name
        assert (
            env["HONE_BASE_MODEL"] == entry.name == d["spec"]["template"]["metadata"]["labels"]["hone.dev/base-model"]
        )
        assert _arg(argv, "--max-lora-rank") == str(entry.max_lora_rank)
        assert entry.context_length and _arg(argv, "--max-model-len") == str(entry.context_length)
        assert "--disable-log-stats" not in argv  # it also turns off /metrics, which scaling reads
        assert env["VLLM_NO_USAGE_STATS"] == "1" and env["DO_NOT_TRACK"] == "1"
        (key,) = [e for e in c["env"] if e["name"] == "VLLM_API_KEY"]
        assert key["valueFrom"]["secretKeyRef"] == {"name": "hone-vllm-api-key", "key": "api-key"}
        gpus = c["resources"].get("limits", {}).get("nvidia.com/gpu")
        strategy = d["spec"].get("strategy", {})
        assert not gpus or strategy.get("type") == "Recreate" or strategy["rollingUpdate"]["maxSurge"] == 0
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert [p for p in find(docs, "PodDisruptionBudget") if selects(p["spec"]["selector"], labels)]
        for url in entry.upstreams:  # the static upstreams resolve to a Service of these pods
            host = str(urlsplit(url).hostname).split(".")[0]
            assert selects({"matchLabels": one(docs, "Service", host)["spec"]["selector"]}, labels), url


def _selector_labels(selector: str) -> tuple[dict[str, str], set[str]]:
    pairs = dict(p.split("=", 1) for p in selector.split(",") if "=" in p)
    return pairs, {p for p in selector.split(",") if "=" not in p}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_can_discover_every_vllm_replica(overlay: str) -> None:
    """Each base model has a headless Service whose EndpointSlices match the gateway's selector
    (the endpoint controller adds service.kubernetes.io/headless to a headless Service's)."""
    docs = render(overlay)
    env = env_of(docs, api_container(docs))
    assert env["HONE_GATEWAY__DISCOVERY"] == "kubernetes"
    gateway = GatewaySettings()
    pairs, keys = _selector_labels(gateway.selector)
    for entry in catalog(docs):
        headless = [
            s
            for s in find(docs, "Service")
            if s["spec"].get("clusterIP") == "None"
            and s["metadata"]["labels"].get(gateway.model_label) == entry.name
            and all(s["metadata"]["labels"].get(k) == v for k, v in pairs.items())
        ]
        assert len(headless) == 1 and keys <= {"service.kubernetes.io/headless"}, entry.name
        assert gateway.port_name in {p["name"] for p in headless[0]["spec"]["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_vllm_key_reaches_only_vllm_and_the_gateway(overlay: str) -> None:
    docs = render(overlay)
    readers = set()
    for name, _, pod in pods(docs):
        for c in containers(pod):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef", {})
                if ref.get("name") == "hone-vllm-api-key":
                    readers.add((name.split("-")[1], c["name"], e["name"]))
            assert {"secretRef": {"name": "hone-vllm-api-key"}} not in c.get("envFrom", []), name
    assert readers == {("api", "api", "HONE_GATEWAY__UPSTREAM_API_KEY"), ("vllm", "vllm", "VLLM_API_KEY")}


@pytest.mark.parametrize(("overlay", "component"), CASES, ids=CASE_IDS)
def test_probes_have_explicit_timeouts(overlay: str, component: str | None) -> None:
    for name, _, pod in pods(render(overlay, component)):
        for c in containers(pod):
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in c:
                    assert "timeoutSeconds" in c[probe], (name, c["name"], probe)


# --- optional components ---------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlays_need_no_crd_and_no_kueue(overlay: str) -> None:
    docs = render(overlay)
    assert {d["apiVersion"] for d in docs} <= BUILTIN_API_VERSIONS
    assert not env_of(docs, api_container(docs)).get("HONE_LAUNCHER__KUBERNETES__KUEUE_QUEUE")


def test_the_kueue_component_names_a_queue_it_creates() -> None:
    docs = render("gpu", "kueue")
    queue = env_of(docs, api_container(docs))["HONE_LAUNCHER__KUBERNETES__KUEUE_QUEUE"]
    (local,) = find(docs, "LocalQueue", queue)
    assert local["apiVersion"].startswith("kueue.x-k8s.io/") and local["spec"]["clusterQueue"]
    example = list(yaml.safe_load_all((K8S / "components" / "kueue" / "clusterqueue.example.yaml").read_text()))
    assert local["spec"]["clusterQueue"] in {d["metadata"]["name"] for d in example if d["kind"] == "ClusterQueue"}


def test_the_ca_bundle_reaches_every_storage_client(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render("gpu", "ca-bundle")
    for name, _, pod in pods(docs):
        for c in pod["containers"]:
            if c["name"] in ("api", "vllm"):
                assert env_of(docs, c)["AWS_CA_BUNDLE"] == "/etc/hone/ca/ca.crt", name
    for _, (job, _, _) in trainer_jobs(docs, monkeypatch):
        pod = job["spec"]["template"]["spec"]
        assert {"name": "AWS_CA_BUNDLE", "value": "/etc/hone/ca/ca.crt"} in pod["containers"][0]["env"]
        assert any(v.get("configMap", {}).get("name") == "hone-ca-bundle" for v in pod["volumes"])


def test_trainer_job_settings_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pull secrets, extra env, deadline and TTL of trainer Jobs: keys of hone-api-config that an
    overlay merges, and the Jobs the API builds carry them."""
    base = config_map(render("gpu"), "hone-api-config")["data"]
    keys = ("IMAGE_PULL_SECRETS", "EXTRA_ENV", "ACTIVE_DEADLINE_S", "TTL_AFTER_FINISHED_S")
    assert all(f"HONE_LAUNCHER__KUBERNETES__{k}" in base for k in keys)
    literals = [
        "HONE_LAUNCHER__KUBERNETES__IMAGE_PULL_SECRETS=mirror-pull",
        'HONE_LAUNCHER__KUBERNETES__EXTRA_ENV={"HTTPS_PROXY": "http://proxy.internal:3128"}',
        "HONE_LAUNCHER__KUBERNETES__ACTIVE_DEADLINE_S=86400",
        "HONE_LAUNCHER__KUBERNETES__TTL_AFTER_FINISHED_S=600",
    ]
    merge = {"configMapGenerator": [{"name": "hone-api-config", "behavior": "merge", "literals": literals}]}
    docs = kustomize(on_top_of("gpu", merge))
    for _, (job, _, _) in trainer_jobs(docs, monkeypatch):
        pod = job["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "mirror-pull"}]
        assert {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"} in pod["containers"][0]["env"]
        assert job["spec"]["activeDeadlineSeconds"] == 86400 and job["spec"]["ttlSecondsAfterFinished"] == 600


def test_registry_credentials_reach_every_hone_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render("gpu", "registry-credentials")
    accounts = {d["metadata"]["name"]: d for d in find(docs, "ServiceAccount")}
    used = {pod["serviceAccountName"] for _, _, pod in pods(docs)}
    used |= {
        job["spec"]["template"]["spec"]["serviceAccountName"] for _, (job, _, _) in trainer_jobs(docs, monkeypatch)
    }
    for name in used:
        assert accounts[name]["imagePullSecrets"] == [{"name": "hone-registry"}], name


def test_servicemonitors_scrape_the_api_and_each_vllm_replica_once() -> None:
    docs = render("gpu", "servicemonitor")
    services = find(docs, "Service")
    for monitor in find(docs, "ServiceMonitor"):
        selected = [s for s in services if selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        assert len(selected) == len({tuple(sorted(s["spec"]["selector"].items())) for s in selected}) >= 1, monitor
        for endpoint in monitor["spec"]["endpoints"]:
            assert all(endpoint["port"] in {p["name"] for p in s["spec"]["ports"]} for s in selected)
    vllm = pod_labels(docs, "hone-vllm")
    policies = [p["spec"] for p in find(docs, "NetworkPolicy") if selects(p["spec"]["podSelector"], vllm)]
    assert any("namespaceSelector" in peer for p in policies for r in p.get("ingress", []) for peer in r["from"])


def test_keda_scales_vllm_on_waiting_requests() -> None:
    docs = render("gpu", "keda")
    for scaled in find(docs, "ScaledObject"):
        target = one(docs, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
        assert target["metadata"]["labels"]["app.kubernetes.io/name"] == "hone-vllm"
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "prometheus" and "vllm:num_requests_waiting" in trigger["metadata"]["query"]
        model = target["metadata"]["labels"]["hone.dev/base-model"]
        assert f'model_name="{model}"' in trigger["metadata"]["query"]
        assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
        assert "replicas" not in target["spec"]  # the HPA's, not reset by every apply


def _prefix_match(prefix: str, path: str) -> bool:
    """Ingress ``Prefix`` / Gateway API ``PathPrefix``: element-wise, so /v1 never matches /v1x."""
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


ROUTED = ["/v1/models", "/v1/chat/completions", "/v1/fine_tuning/jobs", "/ui/", "/ui/js/app.js"]
NEVER = ["/internal/v1/jobs/x/events", "/metrics", "/healthz", "/", "/v1x", "/uix"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_exposes_only_v1_with_tls(overlay: str) -> None:
    docs = render(overlay, "ingress")
    (ingress,) = find(docs, "Ingress")
    hosts = {h for t in ingress["spec"]["tls"] for h in t["hosts"]}
    prefixes = []
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in hosts
        for p in rule["http"]["paths"]:
            assert p["pathType"] == "Prefix" and p["backend"]["service"]["name"] == "hone-api"
            prefixes.append(p["path"])
    assert all(any(_prefix_match(p, path) for p in prefixes) for path in ROUTED)
    assert not any(_prefix_match(p, path) for p in prefixes for path in NEVER)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_route_exposes_only_v1_with_tls(overlay: str) -> None:
    docs = render(overlay, "gateway-api")
    (gateway,) = find(docs, "Gateway")
    (route,) = find(docs, "HTTPRoute")
    assert gateway["spec"]["gatewayClassName"]
    listeners = {lis["name"]: lis for lis in gateway["spec"]["listeners"]}
    for parent in route["spec"]["parentRefs"]:
        assert parent["name"] == gateway["metadata"]["name"]
        listener = listeners[parent["sectionName"]]
        assert listener["protocol"] == "HTTPS" and listener["tls"]["certificateRefs"]
    prefixes = []
    for rule in route["spec"]["rules"]:
        for backend in rule["backendRefs"]:
            service = one(docs, "Service", backend["name"])
            assert backend["port"] in {p["port"] for p in service["spec"]["ports"]}
        for match in rule["matches"]:
            assert match["path"]["type"] == "PathPrefix"
            prefixes.append(match["path"]["value"])
    assert all(any(_prefix_match(p, path) for p in prefixes) for path in ROUTED)
    assert not any(_prefix_match(p, path) for p in prefixes for path in NEVER)
