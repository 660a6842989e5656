"""Deployment files and metrics, checked against real tools.

promtool validates the Prometheus config and alert rules (and runs the rules'
unit tests); every metric the dashboard and the rules query must exist in a
live worker's /metrics; a real Prometheus scrapes a worker and the processed
count is read back through its HTTP query API.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from .conftest import ROOT, free_port, posts, produce, wait_port

DEPLOY = ROOT / "deploy"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(not (PROMTOOL and PROMETHEUS), reason="Debian package prometheus not installed")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True)


@pytest.mark.prometheus
@needs_prometheus
def test_promtool_checks_config_and_rules(tmp_path):
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    rules = DEPLOY / "prometheus" / "alerts.yml"
    local = tmp_path / "prometheus.yml"
    local.write_text(config.replace("/etc/prometheus/alerts.yml", str(rules)))
    checked = promtool("check", "config", str(local))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0 and "7 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml"))
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_deploy_files_parse():
    for path in [DEPLOY / "docker-compose.yml", *sorted((DEPLOY / "k8s").glob("*.yaml")), *DEPLOY.glob("grafana/provisioning/*/*.yml")]:
        docs = list(yaml.safe_load_all(path.read_text()))
        assert docs and all(docs), path
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert {"kafka", "worker", "prometheus", "grafana"} <= set(compose["services"])
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    kinds = {d["kind"] for p in (DEPLOY / "k8s").glob("*.yaml") for d in yaml.safe_load_all(p.read_text())}
    assert kinds == {"Deployment", "ConfigMap", "Service", "ScaledObject", "TriggerAuthentication"}


def test_configmap_matches_lexicons():
    rendered = subprocess.run(["python3", str(DEPLOY / "k8s" / "render_configmap.py")], capture_output=True, text=True, check=True)
    assert rendered.stdout == (DEPLOY / "k8s" / "configmap-lexicons.yaml").read_text(), "re-render the ConfigMap"
    lexicons, policy = yaml.safe_load_all(rendered.stdout)
    assert lexicons["data"]["gambling.txt"] == (ROOT / "lexicons" / "gambling.txt").read_text(encoding="utf-8")
    assert policy["data"]["default.policy"] == (ROOT / "policy" / "default.policy").read_text(encoding="utf-8")


def _queried_metrics() -> set[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "screener.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    names = {n for e in exprs for n in re.findall(r"\b(screener_[a-z_]+)", e)}
    return {re.sub(r"_bucket$", "", n) for n in names}  # a histogram is declared by its base name


@pytest.mark.integration
def test_dashboard_and_rules_query_only_existing_metrics(topics, workers):
    worker = workers(topics).start()
    _, body = worker.get("/metrics")
    exposed = set(re.findall(r"^# TYPE (screener_[a-z_]+) ", body, re.M))
    exposed |= {f"{n}_total" for n in exposed}  # counters are declared without the suffix
    queried = _queried_metrics()
    assert queried, "no metrics found in the dashboard"
    assert queried <= exposed, f"queried but not exposed: {sorted(queried - exposed)}"
    # Naming conventions: base units, no unbounded labels.
    assert not re.search(r'(post_id|account_id|term)="', body)
    assert worker.terminate() == 0


@pytest.mark.integration
@pytest.mark.prometheus
@needs_prometheus
def test_real_prometheus_scrapes_the_worker(topics, workers, tmp_path):
    worker = workers(topics).start()
    produce(topics.bootstrap, topics.input, posts([(i, "网上赌博" if i % 2 else "你好") for i in range(50)]))
    worker.wait_metric("screener_posts_consumed_total", lambda v: v == 50)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: screener\n    static_configs: [{{targets: ['127.0.0.1:{worker.metrics_port}']}}]\n"
    )
    server = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        query = urllib.parse.urlencode({"query": 'sum(screener_posts_consumed_total{job="screener"})'})
        deadline, value = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?{query}", timeout=5) as r:
                    result = json.load(r)["data"]["result"]
            except urllib.error.HTTPError as exc:  # 503 while its storage starts: the port opens first
                if exc.code != 503:
                    raise
                result = []
            if result:
                value = float(result[0]["value"][1])
                if value == 50:
                    break
            time.sleep(0.5)
        assert value == 50
        query = urllib.parse.urlencode({"query": 'sum(screener_posts_total{outcome="recalled"})'})
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?{query}", timeout=5) as r:
            assert float(json.load(r)["data"]["result"][0]["value"][1]) == 25
    finally:
        server.terminate()
        server.wait(10)
        assert worker.terminate() == 0
