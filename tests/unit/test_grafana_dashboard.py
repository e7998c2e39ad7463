"""The Grafana dashboard (k8s/components/grafana-dashboard/hone-dashboard.json) shows metrics that
exist:

- it is a dashboard Grafana imports: valid JSON, a schemaVersion, unique panel ids, every query
  on the ``${datasource}`` template variable (no data source uid of one Grafana);
- each metric name in its PromQL (panels and template variables) is one hone's real /metrics
  exposes (scraped from a started server, after a request) or one vLLM declares (its installed
  source; that half skips without vLLM), and each label it groups or matches on is one that
  metric has;
- the grafana-dashboard component ships that same file as a ConfigMap for Grafana's sidecar.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.k8s import K8S, render
from tests.harness.server import RunningServer

COMPONENT = K8S / "components" / "grafana-dashboard"
DASHBOARD = COMPONENT / "hone-dashboard.json"

# PromQL words that are not metric names: aggregation modifiers, set operators, offset.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# What each type of metric exposes besides its name (prometheus-client and vLLM's exporter).
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))  # a collapsed row holds its panels


def datasources(node: Any) -> Iterator[Any]:
    """Every ``datasource`` a panel, target or variable names (not the built-in annotations)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and node.get("builtIn") != 1:
                yield value
            else:
                yield from datasources(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasources(item)


def expressions(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression: the panels' targets and the query template variables'."""
    exprs = [t["expr"] for p in all_panels(board["panels"]) for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
            assert m, f"template variable {var['name']}: {query}"
            exprs.append(f"group by ({m[2]}) ({m[1]})")  # the metric must have that label
    return exprs


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: the identifiers left once strings, label matchers,
    ranges, grouping clauses, functions, keywords and numbers are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in _IDENT.finditer(text):
        word = m.group()
        if word in _KEYWORDS or text[m.end() :].lstrip().startswith("("):
            continue  # a keyword or a function call
        if m.start() and (text[m.start() - 1].isdigit() or text[m.start() - 1] == "."):
            continue  # the exponent of a number (1e3)
        names.add(word)
    return names


def label_names(expr: str) -> set[str]:
    """The labels an expression groups, joins or matches on, less those every series has or
    gets from its scrape (le: a histogram's buckets; instance, job: the target's)."""
    names = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        names |= {n.strip() for n in m[1].split(",") if n.strip()}
    for m in re.finditer(r"\{([^}]*)\}", expr):
        names |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"", m[1]))
    return names - {"le", "instance", "job", "__name__"}


def exposed(families: dict[str, str]) -> set[str]:
    """The sample names metric families (name -> type) expose."""
    return {name + suffix for name, kind in families.items() for suffix in _SUFFIXES.get(kind, ("",))}


def hone_scrape(server: RunningServer) -> tuple[dict[str, str], dict[str, set[str]]]:
    """name -> type of every family hone's /metrics lists (with no samples yet too), and the
    labels of each sample name. One request and one observation of each labelled gateway
    metric first, so every family has samples to show its labels."""
    httpx.get(server.base_url + "/v1/models")
    metrics = server.ctx.metrics
    metrics.observe_gateway("hone-tiny", "stream", 200, 0.1, {"prompt_tokens": 3, "completion_tokens": 2})
    metrics.adapter_cold_loads.labels("hone-tiny").inc()
    metrics.upstream_restarts.labels("hone-tiny").inc()
    resp = httpx.get(server.base_url + "/metrics")
    resp.raise_for_status()
    families: dict[str, str] = {}
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(resp.text):
        families[family.name] = family.type
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return families, labels


def vllm_families() -> tuple[dict[str, str], str]:
    """name -> type of every ``vllm:`` metric the installed vLLM declares, and the source of its
    metrics package (where its label names are spelt)."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("vLLM is not installed")
    declared = re.compile(r'(_counter_cls|_gauge_cls|_histogram_cls|Counter|Gauge|Histogram)\(\s*name="(vllm:[\w:]+)"')
    families = {}
    for root in spec.submodule_search_locations:
        for path in Path(root).rglob("*.py"):
            for m in declared.finditer(path.read_text(errors="replace")):
                kind = m[1].strip("_").removesuffix("_cls").lower()
                families[m[2].removesuffix("_total") if kind == "counter" else m[2]] = kind
    assert "vllm:num_requests_running" in families, "vLLM's metric declarations moved: update this reader"
    source = "".join(
        p.read_text() for root in spec.submodule_search_locations for p in Path(root, "v1", "metrics").glob("*.py")
    )
    return families, source


def test_the_dashboard_is_one_grafana_imports() -> None:
    board = dashboard()
    assert isinstance(board["schemaVersion"], int) and board["uid"] and board["title"]
    ids = [p["id"] for p in all_panels(board["panels"])]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    (ds,) = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for p in all_panels(board["panels"]):
        assert p["type"] == "row" or p["targets"], p["title"]
    sources = list(datasources(board))
    assert sources and all(s == {"type": "prometheus", "uid": "${datasource}"} for s in sources), (
        f"every query on the ${{datasource}} variable, no data source uid of one Grafana: {sources}"
    )


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(hone_x_bucket{status=~"5..", a="b c"}[$__rate_interval])))'
        " / on (route) group_left max without (instance) (vllm:y_total offset 5m) > bool 1e3"
    )
    assert metric_names(expr) == {"hone_x_bucket", "vllm:y_total"}
    assert label_names(expr) == {"route", "status", "a"}
    assert exposed({"hone_h": "histogram", "hone_c": "counter", "hone_g": "gauge"}) >= {
        "hone_h_bucket",
        "hone_c_total",
        "hone_g",
    }


def test_hone_metrics_in_the_dashboard_are_hones(server: RunningServer) -> None:
    families, labels = hone_scrape(server)
    names = exposed(families)
    assert {"hone_http_requests_total", "hone_jobs", "hone_gateway_latency_seconds_bucket"} <= names
    used = {n for e in expressions(dashboard()) for n in metric_names(e) if not n.startswith("vllm:")}
    assert used, "no hone metric in the dashboard"
    assert used <= names, f"not on hone's /metrics: {sorted(used - names)}"
    for expr in expressions(dashboard()):
        metrics = {n for n in metric_names(expr) if not n.startswith("vllm:")}
        if metrics:
            have = set().union(*(labels.get(n, set()) for n in metrics))
            assert label_names(expr) <= have, f"{expr}: labels {sorted(label_names(expr) - have)} are not on {metrics}"


def test_vllm_metrics_in_the_dashboard_are_vllms() -> None:
    used = {n for e in expressions(dashboard()) for n in metric_names(e) if n.startswith("vllm:")}
    assert {"vllm:lora_requests_info", "vllm:kv_cache_usage_perc"} <= used
    families, source = vllm_families()
    names = exposed(families)
    assert used <= names, f"not declared by the installed vLLM: {sorted(used - names)}"
    for expr in expressions(dashboard()):
        if any(n.startswith("vllm:") for n in metric_names(expr)):
            unknown = {label for label in label_names(expr) if f'"{label}"' not in source}
            assert not unknown, f"{expr}: vLLM's metrics code names no label {sorted(unknown)}"


def test_the_component_ships_the_dashboard_to_grafanas_sidecar() -> None:
    (cm,) = [d for d in render("gpu", "grafana-dashboard") if d["metadata"]["name"] == "hone-grafana-dashboard"]
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["hone-dashboard.json"]) == dashboard()
