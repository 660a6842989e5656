"""deploy/k8s checked against schemas, offline, and against each other.

Core objects (Deployment, Service, ConfigMap) against Kubernetes' own JSON
schemas in strict mode (kubernetes-validate bundles them: unknown fields are
errors); KEDA's ScaledObject and TriggerAuthentication against models
generated from KEDA's CRDs (cloudcoil-models-keda: types and required fields;
fields the CRD does not know are found by a round trip). Then what no schema
can say: the autoscaler scales the Deployment, watches its group and topic on
its brokers with its credentials, and never asks for more consumers than the
input topic has partitions. Each check is shown to fail on a broken copy.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KEDA_API = "keda.sh/v1alpha1"
#: The worker's sasl.mechanisms (librdkafka's spelling, the default client's) in the Kafka scaler's spelling.
KEDA_SASL = {"": "none", "PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512",
             "OAUTHBEARER": "oauthbearer", "GSSAPI": "gssapi"}


def manifests() -> list[dict[str, Any]]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def one(kind: str) -> dict[str, Any]:
    [found] = [d for d in manifests() if d["kind"] == kind]
    return found


# -- schemas ----------------------------------------------------------------------------------------------------------
def kubernetes_problems(doc: dict[str, Any]) -> str | None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as exc:
        return str(exc)
    return None


def keda_problems(doc: dict[str, Any]) -> str | None:
    """Errors of a KEDA object, or None. The models ignore unknown fields, so
    the document must also survive a round trip unchanged."""
    import pydantic
    from cloudcoil.models.keda import v1alpha1

    model = {"ScaledObject": v1alpha1.ScaledObject, "TriggerAuthentication": v1alpha1.TriggerAuthentication}[doc["kind"]]
    try:
        parsed = model.model_validate(doc)
    except pydantic.ValidationError as exc:
        return str(exc)
    unknown = _unknown_fields(doc, parsed.model_dump(by_alias=True, exclude_none=True, mode="json"))
    return f"fields the CRD does not have: {unknown}" if unknown else None


def _unknown_fields(given: Any, kept: Any, where: str = "") -> list[str]:
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [where or "."]
        return [f for key, value in given.items()
                for f in (_unknown_fields(value, kept[key], f"{where}.{key}") if key in kept else [f"{where}.{key}"])]
    if isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        return [f for i, (g, k) in enumerate(zip(given, kept)) for f in _unknown_fields(g, k, f"{where}[{i}]")]
    return []


def test_every_core_object_matches_the_kubernetes_schema():
    core = [d for d in manifests() if d["apiVersion"] != KEDA_API]
    assert {d["kind"] for d in core} == {"Deployment", "Service", "ConfigMap"}
    for doc in core:
        assert kubernetes_problems(doc) is None, (doc["kind"], doc["metadata"]["name"], kubernetes_problems(doc))


def test_the_kubernetes_schema_check_fails_on_a_broken_deployment():
    deployment = one("Deployment")
    unknown = copy.deepcopy(deployment)
    unknown["spec"]["template"]["spec"]["containers"][0]["cpuRequest"] = 2  # not a container field
    assert "cpuRequest" in (kubernetes_problems(unknown) or "")
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "9108"
    assert kubernetes_problems(wrong_type) is not None


def test_the_keda_objects_match_keda_s_crds():
    keda = [d for d in manifests() if d["apiVersion"] == KEDA_API]
    assert sorted(d["kind"] for d in keda) == ["ScaledObject", "TriggerAuthentication"]
    for doc in keda:
        assert keda_problems(doc) is None, (doc["kind"], keda_problems(doc))


@pytest.mark.parametrize("path, value", [
    (("spec", "maxReplicaCount"), "twelve"),               # not an integer
    (("spec", "scaleTargetRef"), None),                    # required
    (("spec", "triggers", 0, "metadata", "lagThreshold"), 60000),  # metadata values are strings
    (("spec", "triggers", 0, "authRef"), {"name": "x"}),   # not a field (authenticationRef is)
    (("spec", "maxReplicas"), 12),                         # an HPA spelling, not KEDA's
])
def test_the_keda_check_fails_on_a_broken_scaled_object(path, value):
    broken = copy.deepcopy(one("ScaledObject"))
    parent = broken
    for key in path[:-1]:
        parent = parent[key]
    if value is None:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    assert keda_problems(broken) is not None


# -- what no schema says ----------------------------------------------------------------------------------------------
def _worker(deployment: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], int]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    args = container.get("args", [])
    workers = int(args[args.index("--workers") + 1]) if "--workers" in args else int(env.get("SCREENER_WORKERS") or 1)
    return container, env, workers


def autoscaling_problems(deployment: dict[str, Any], scaled: dict[str, Any], auth: dict[str, Any]) -> list[str]:
    from screener.stream.clients import CONFLUENT_CONSUMER

    container, env, workers = _worker(deployment)
    spec = scaled["spec"]
    [trigger] = spec["triggers"]
    meta = trigger["metadata"]
    partitions = int(scaled["metadata"]["annotations"]["screener/input-partitions"])
    problems = []
    if spec["scaleTargetRef"]["name"] != deployment["metadata"]["name"]:
        problems.append("scales another Deployment")
    if "replicas" in deployment["spec"]:
        problems.append("the Deployment sets replicas: every apply would undo the autoscaler")
    if not 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]:
        problems.append("replica bounds out of order")
    if spec["maxReplicaCount"] * workers > partitions:
        problems.append(f"{spec['maxReplicaCount']} pods x {workers} processes > {partitions} partitions: some would idle")
    if trigger["type"] != "kafka" or meta.get("allowIdleConsumers") != "false":
        problems.append("not the Kafka scaler capped at the partition count")
    if not meta["lagThreshold"].isdigit() or int(meta["lagThreshold"]) < 1:
        problems.append("lagThreshold is not a positive number of records")
    expected = {"bootstrapServers": env.get("SCREENER_BOOTSTRAP_SERVERS"),
                "consumerGroup": env.get("SCREENER_GROUP_ID", "screener"),
                "topic": env.get("SCREENER_INPUT_TOPIC"),
                "offsetResetPolicy": CONFLUENT_CONSUMER["auto.offset.reset"]}
    problems += [f"{key} {meta.get(key)!r} is not the worker's {value!r}" for key, value in expected.items()
                 if meta.get(key) != value]
    protocol = env.get("SCREENER_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    if (meta.get("tls") == "enable") != protocol.endswith("SSL"):
        problems.append(f"tls {meta.get('tls')!r} does not match security.protocol {protocol}")
    mechanism = env.get("SCREENER_KAFKA_SASL_MECHANISMS", "")
    if meta.get("sasl", "none") != KEDA_SASL.get(mechanism, f"(no KEDA mode for {mechanism!r})"):
        problems.append(f"sasl {meta.get('sasl')!r} does not match sasl.mechanisms {mechanism!r}")
    if trigger.get("authenticationRef", {}).get("name") != auth["metadata"]["name"]:
        problems.append("the trigger does not use the TriggerAuthentication")
    secrets = {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"]): e["name"]
               for e in container.get("env", []) if "valueFrom" in e}
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    for parameter, variable in (("username", "SCREENER_KAFKA_SASL_USERNAME"),
                                ("password", "SCREENER_KAFKA_SASL_PASSWORD")):
        if secrets.get(refs.get(parameter)) != variable:
            problems.append(f"{parameter} is not the secret the worker reads into {variable}")
    tls_volumes = {v["secret"]["secretName"] for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    if "ca" in refs and refs["ca"][0] not in tls_volumes:
        problems.append("the CA is not the one mounted into the worker")
    return problems


def test_the_autoscaler_agrees_with_the_deployment():
    assert autoscaling_problems(one("Deployment"), one("ScaledObject"), one("TriggerAuthentication")) == []


@pytest.mark.parametrize("break_it, expected", [
    (lambda d, s, a: s["spec"].update(maxReplicaCount=13), "partitions: some would idle"),
    (lambda d, s, a: d["spec"]["template"]["spec"]["containers"][0].update(args=["--workers", "2"]),
     "partitions: some would idle"),
    (lambda d, s, a: d["spec"].update(replicas=3), "every apply would undo"),
    (lambda d, s, a: s["spec"]["triggers"][0]["metadata"].update(consumerGroup="other"), "consumerGroup"),
    (lambda d, s, a: s["spec"]["triggers"][0]["metadata"].update(topic="screener.events"), "topic"),
    (lambda d, s, a: s["spec"]["triggers"][0]["metadata"].update(sasl="plaintext"), "sasl"),
    (lambda d, s, a: s["spec"]["triggers"][0]["metadata"].pop("tls"), "tls"),
    (lambda d, s, a: a["spec"]["secretTargetRef"][1].update(key="username"), "password"),
    (lambda d, s, a: s["spec"]["scaleTargetRef"].update(name="other"), "another Deployment"),
])
def test_the_agreement_check_fails_on_a_broken_copy(break_it, expected):
    deployment, scaled, auth = (copy.deepcopy(one(k)) for k in ("Deployment", "ScaledObject", "TriggerAuthentication"))
    break_it(deployment, scaled, auth)
    assert any(expected in p for p in autoscaling_problems(deployment, scaled, auth))
