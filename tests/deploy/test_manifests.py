"""Kubernetes manifests: every overlay renders, validates strictly, and keeps the invariants."""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

import kubernetes_validate
import pytest

from models.settings import Settings
from tests.deploy.conftest import (
    OVERLAYS,
    Rendered,
    containers,
    pod_spec,
    settings_variable_names,
    worker_queues,
)

# Oldest Kubernetes release the manifests promise to work on, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())

# CONTRACT §9: every process that runs workflow code must be able to receive all of them.
CONTRACT_VARIABLES = {
    "DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "WORKFLOW_EXECUTION_TIMEOUT",
    "MAX_CONCURRENT_WORKFLOWS", "NOTIFICATION_RETRY_COUNT", "FLOWYARD_SECRET_KEYS", "SMTP_URL",
    "SMS_PROVIDER_URL", "WEBHOOK_SIGNING_SECRET", "HTTP_ALLOWED_HOSTS", "LOG_FORMAT",
}
# Variables read by a third-party program Flowyard runs, not by Flowyard's settings.
THIRD_PARTY_VARIABLES = {"FLOWER_BASIC_AUTH": "Flower's own basic-auth option"}

# Every node type's queue (CONTRACT §2: `<type>` unless configured otherwise).
CONTRACT_NODE_TYPES = (
    "trigger", "noop", "transform", "condition", "delay", "http", "approval", "notification",
    "integration", "subworkflow",
)


def node_type_queues() -> set[str]:
    try:
        from engine.nodetypes import BUILTIN_NODE_TYPES
    except ImportError:  # the node-type registry is another issue's; fall back to the contract
        return set(CONTRACT_NODE_TYPES)
    queues = {spec.queue for spec in BUILTIN_NODE_TYPES.values()}
    assert set(BUILTIN_NODE_TYPES) >= set(CONTRACT_NODE_TYPES)
    return queues


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, rendered: dict[str, Rendered]) -> Rendered:
    return rendered[request.param]


def test_the_expected_overlays_exist() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


def test_every_workload_is_rendered(overlay: Rendered) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in overlay.objects}
    for expected in [
        ("Deployment", "flowyard-api"), ("Service", "flowyard-api"),
        ("Deployment", "flowyard-scheduler"), ("Deployment", "flowyard-flower"),
        ("Service", "flowyard-flower"), ("Job", "flowyard-migrate"),
        ("NetworkPolicy", "flowyard-worker-egress"),
        ("TriggerAuthentication", "flowyard-keda-redis"),
    ]:
        assert expected in names, f"{overlay.overlay}: {expected} missing"
    assert len(overlay.workers()) >= 4


# --- schema validation ---------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_validate_strictly(overlay: Rendered, version: str) -> None:
    core = [o for o in overlay.objects if not o["apiVersion"].startswith("keda.sh/")]
    assert core
    for obj in core:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{overlay.overlay}: {obj['kind']} {obj['metadata']['name']}: {error}")


def test_the_validator_rejects_an_unknown_field(overlay: Rendered) -> None:
    broken = copy.deepcopy(overlay.named("Deployment", "flowyard-api"))
    pod_spec(broken)["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


# KEDA's documented fields (keda.sh docs: "ScaledObject specification", "Redis Lists" scaler,
# "Authentication": TriggerAuthentication). KEDA CRDs are not in kubernetes-validate.
SCALED_OBJECT_SPEC = {
    "scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
    "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
}
SCALE_TARGET_REF = {"apiVersion", "kind", "name", "envSourceContainerName"}
ADVANCED = {"restoreToOriginalReplicaCount", "horizontalPodAutoscalerConfig", "scalingModifiers"}
HPA_CONFIG = {"name", "behavior"}
HPA_BEHAVIOR = {"scaleUp", "scaleDown"}
HPA_RULES = {"stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"}
HPA_POLICY = {"type", "value", "periodSeconds"}
TRIGGER = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
AUTHENTICATION_REF = {"name", "kind"}
REDIS_LIST_METADATA = {
    "address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv",
    "usernameFromEnv", "passwordFromEnv", "listName", "listLength", "activationListLength",
    "enableTLS", "unsafeSsl", "databaseIndex",
}
REDIS_AUTH_PARAMETERS = {
    "address", "host", "port", "username", "password", "tls", "ca", "cert", "key", "keyPassword",
}
TRIGGER_AUTHENTICATION_SPEC = {
    "podIdentity", "secretTargetRef", "env", "configMapTargetRef", "hashiCorpVault",
    "azureKeyVault", "awsSecretManager", "gcpSecretManager", "boundServiceAccountToken",
}
SECRET_TARGET_REF = {"parameter", "name", "key"}


def _only(fields: set[str], value: dict[str, Any], where: str) -> None:
    unknown = set(value) - fields
    assert not unknown, f"{where}: undocumented fields {sorted(unknown)}"


def _check_scaled_object(obj: dict[str, Any], where: str) -> None:
    assert obj["apiVersion"] == "keda.sh/v1alpha1"
    spec = obj["spec"]
    _only(SCALED_OBJECT_SPEC, spec, where)
    _only(SCALE_TARGET_REF, spec["scaleTargetRef"], f"{where}.scaleTargetRef")
    assert spec["scaleTargetRef"]["name"]
    advanced = spec.get("advanced", {})
    _only(ADVANCED, advanced, f"{where}.advanced")
    hpa = advanced.get("horizontalPodAutoscalerConfig", {})
    _only(HPA_CONFIG, hpa, f"{where}.advanced.horizontalPodAutoscalerConfig")
    behavior = hpa.get("behavior", {})
    _only(HPA_BEHAVIOR, behavior, f"{where}.behavior")
    for direction, rules in behavior.items():
        _only(HPA_RULES, rules, f"{where}.behavior.{direction}")
        for policy in rules.get("policies", []):
            _only(HPA_POLICY, policy, f"{where}.behavior.{direction}.policies")
            assert policy["type"] in ("Pods", "Percent")
    for key in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
        assert isinstance(spec.get(key), int), f"{where}.{key} must be an integer"
    assert spec["triggers"], f"{where}: no triggers"
    for trigger in spec["triggers"]:
        _only(TRIGGER, trigger, f"{where}.triggers")
        assert trigger["type"] == "redis", f"{where}: scale on the Redis list of the queue"
        metadata = trigger["metadata"]
        _only(REDIS_LIST_METADATA, metadata, f"{where}.triggers.metadata")
        # KEDA reads trigger metadata as strings; a YAML number is rejected by the CRD.
        assert all(isinstance(v, str) for v in metadata.values()), f"{where}: metadata strings"
        assert metadata["listName"]
        assert int(metadata["listLength"]) >= 1
        assert int(metadata.get("databaseIndex", "0")) >= 0
        _only(AUTHENTICATION_REF, trigger.get("authenticationRef", {}), f"{where}.authRef")


def test_keda_objects_use_documented_fields(overlay: Rendered) -> None:
    scaled = overlay.of_kind("ScaledObject")
    assert scaled
    for obj in scaled:
        _check_scaled_object(obj, f"{overlay.overlay}: ScaledObject {obj['metadata']['name']}")
    for auth in overlay.of_kind("TriggerAuthentication"):
        where = f"{overlay.overlay}: TriggerAuthentication {auth['metadata']['name']}"
        _only(TRIGGER_AUTHENTICATION_SPEC, auth["spec"], where)
        for ref in auth["spec"].get("secretTargetRef", []):
            _only(SECRET_TARGET_REF, ref, where)
            assert ref["parameter"] in REDIS_AUTH_PARAMETERS, where


def test_undocumented_keda_fields_are_caught(overlay: Rendered) -> None:
    broken = copy.deepcopy(overlay.of_kind("ScaledObject")[0])
    broken["spec"]["triggers"][0]["metadata"]["queueLength"] = "5"
    with pytest.raises(AssertionError, match="undocumented"):
        _check_scaled_object(broken, "broken")


def test_each_worker_pool_autoscales_on_its_own_queues(overlay: Rendered) -> None:
    auth_names = {a["metadata"]["name"] for a in overlay.of_kind("TriggerAuthentication")}
    by_target = {s["spec"]["scaleTargetRef"]["name"]: s for s in overlay.of_kind("ScaledObject")}
    workers = {w["metadata"]["name"]: w for w in overlay.workers()}
    assert set(by_target) == set(workers), "exactly one ScaledObject per worker Deployment"
    for name, scaled in by_target.items():
        spec = scaled["spec"]
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        # A floor of one: a busy pool is never scaled to zero while a step runs.
        assert spec["minReplicaCount"] >= 1, name
        assert spec.get("idleReplicaCount") is None, f"{name}: idleReplicaCount scales to zero"
        assert spec["maxReplicaCount"] >= spec["minReplicaCount"], name
        lists = {t["metadata"]["listName"] for t in spec["triggers"]}
        assert lists == set(worker_queues(workers[name])), name
        for trigger in spec["triggers"]:
            assert trigger["authenticationRef"]["name"] in auth_names, name
        # KEDA's HPA owns the count; a `replicas` in the Deployment would fight it on apply.
        assert "replicas" not in workers[name]["spec"], name


# --- invariants ------------------------------------------------------------------------------


def test_every_env_var_set_is_one_the_settings_know(overlay: Rendered) -> None:
    known = settings_variable_names()
    assert CONTRACT_VARIABLES <= known, "settings must read every CONTRACT §9 variable"
    for workload in overlay.workloads():
        for container in containers(workload):
            assert "envFrom" not in container, "name each variable so it can be checked"
            for variable in container.get("env", []):
                name = variable["name"]
                assert name in known or name in THIRD_PARTY_VARIABLES, (
                    f"{overlay.overlay}: {workload['metadata']['name']} sets {name}, "
                    "which Settings.from_env does not read"
                )


def test_every_config_key_is_a_valid_setting(overlay: Rendered) -> None:
    known = settings_variable_names()
    for config_map in overlay.of_kind("ConfigMap"):
        data = config_map.get("data", {})
        assert set(data) <= known, f"unknown keys {set(data) - known}"
        Settings.from_env(data)  # raises SettingsError naming a bad value


def test_processes_that_run_workflow_code_get_every_contract_variable(overlay: Rendered) -> None:
    for workload in overlay.of_kind("Deployment"):
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        if component not in ("api", "worker", "scheduler"):
            continue
        names = {v["name"] for v in pod_spec(workload)["containers"][0].get("env", [])}
        missing = CONTRACT_VARIABLES - names
        assert not missing, f"{workload['metadata']['name']} lacks {sorted(missing)}"


def test_every_container_has_probes_and_limits(overlay: Rendered) -> None:
    for workload in overlay.workloads():
        name = workload["metadata"]["name"]
        for container in containers(workload):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{name}: {kind}"
            if workload["kind"] == "Job":
                continue  # runs to completion, bounded by activeDeadlineSeconds instead
            assert "livenessProbe" in container, f"{name}: no livenessProbe"
            assert {"readinessProbe", "startupProbe"} & set(container), f"{name}: no start probe"
        if workload["kind"] == "Job":
            assert workload["spec"]["activeDeadlineSeconds"] > 0


def test_api_probes_use_readyz_and_healthz(overlay: Rendered) -> None:
    api = pod_spec(overlay.named("Deployment", "flowyard-api"))["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_worker_liveness_comes_from_the_heartbeat_file(overlay: Rendered) -> None:
    for worker in overlay.workers():
        container = pod_spec(worker)["containers"][0]
        for probe in ("livenessProbe", "startupProbe"):
            command = container[probe]["exec"]["command"]
            assert command[:2] == ["flowyard", "worker-health"], worker["metadata"]["name"]
            assert "inspect" not in command and "ping" not in command
        env = {v["name"] for v in container["env"]}
        assert "FLOWYARD_WORKER_HEARTBEAT_FILE" in env


def test_api_scheduler_and_workers_are_scraped_where_they_serve_metrics(
        overlay: Rendered) -> None:
    """The annotation's port is a container port, and the process listens on it."""
    for workload in [overlay.named("Deployment", "flowyard-api"),
                     overlay.named("Deployment", "flowyard-scheduler"), *overlay.workers()]:
        name = workload["metadata"]["name"]
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/scrape") == "true", name
        assert annotations["prometheus.io/path"] == "/metrics", name
        port = int(annotations["prometheus.io/port"])
        container = pod_spec(workload)["containers"][0]
        assert port in {p["containerPort"] for p in container["ports"]}, name
        option = "--port" if container["args"][0] == "api" else "--metrics-port"
        args = container["args"]
        assert args[args.index(option) + 1] == str(port), name


def test_grace_periods_cover_the_step_time_limit(overlay: Rendered) -> None:
    from worker.dispatch import HARD_LIMIT_GRACE_SECONDS

    config = overlay.of_kind("ConfigMap")[0].get("data", {})
    # A step without its own timeout_seconds is killed by Celery at this hard limit.
    hard_limit = Settings.from_env(config).default_step_timeout_seconds + HARD_LIMIT_GRACE_SECONDS
    for worker in overlay.workers():
        grace = pod_spec(worker)["terminationGracePeriodSeconds"]
        assert grace > hard_limit, (
            f"{worker['metadata']['name']}: terminationGracePeriodSeconds {grace} must exceed "
            f"the step hard time limit {hard_limit}s so warm shutdown can finish running steps"
        )


def test_worker_pools_cover_every_node_type_queue_once(overlay: Rendered) -> None:
    consumed: list[str] = []
    for worker in overlay.workers():
        consumed.extend(worker_queues(worker))
    assert len(consumed) == len(set(consumed)), f"a queue is consumed by two pools: {consumed}"
    missing = node_type_queues() - set(consumed)
    assert not missing, f"{overlay.overlay}: no worker consumes {sorted(missing)}"


def _pool(worker: dict[str, Any]) -> str:
    args = pod_spec(worker)["containers"][0]["args"]
    for flag in ("-P", "--pool"):
        if flag in args:
            return str(args[args.index(flag) + 1])
    return "prefork"


def test_each_worker_pool_can_run_its_queues_and_pure_steps_skip_prefork(
        overlay: Rendered) -> None:
    from engine.nodetypes import BUILTIN_NODE_TYPES
    from worker.pools import check_pool, pure_queues

    pools = {}
    for worker in overlay.workers():
        name, queues = worker["metadata"]["name"], worker_queues(worker)
        # What `flowyard worker` checks at start: a pod that fails it never runs.
        check_pool(_pool(worker), queues, BUILTIN_NODE_TYPES)
        pools.update(dict.fromkeys(queues, (name, _pool(worker))))
    assert {queue: pools[queue][1] for queue in pure_queues(BUILTIN_NODE_TYPES)} == dict.fromkeys(
        pure_queues(BUILTIN_NODE_TYPES), "threads"), pools


def test_images_agree_across_deployments_and_the_migrate_job(overlay: Rendered) -> None:
    images = {
        c["image"] for w in overlay.workloads() for c in containers(w)
    }
    assert len(images) == 1, f"{overlay.overlay}: several images {images}"
    (image,) = images
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


def test_processes_run_the_image_entrypoint_in_exec_form(overlay: Rendered) -> None:
    for workload in overlay.workloads():
        for container in containers(workload):
            # No `command`: the image's ENTRYPOINT ["flowyard"] stays PID 1 (no shell between).
            assert "command" not in container, workload["metadata"]["name"]
            assert container["args"] and not container["args"][0].startswith("-")
    job = overlay.named("Job", "flowyard-migrate")
    assert pod_spec(job)["containers"][0]["args"] == ["db", "upgrade"]


def test_pods_run_hardened(overlay: Rendered) -> None:
    for workload in overlay.workloads():
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec.get("automountServiceAccountToken") is False, name
        for container in containers(workload):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"


def test_flower_is_single_private_and_authenticated(overlay: Rendered) -> None:
    flower = overlay.named("Deployment", "flowyard-flower")
    assert flower["spec"]["replicas"] == 1
    assert flower["spec"]["strategy"]["type"] == "Recreate"
    assert overlay.named("Service", "flowyard-flower")["spec"]["type"] == "ClusterIP"
    env = {v["name"]: v for v in pod_spec(flower)["containers"][0]["env"]}
    auth = env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    assert not auth.get("optional", False), "Flower must not start without basic auth"
    assert "DATABASE_URL" not in env and "FLOWYARD_SECRET_KEYS" not in env


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are evaluated here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_outbound_workers_cannot_reach_private_or_metadata_addresses(overlay: Rendered) -> None:
    policy = overlay.named("NetworkPolicy", "flowyard-worker-egress")["spec"]
    assert policy["policyTypes"] == ["Egress"]
    for worker in overlay.workers():
        labels = worker["spec"]["template"]["metadata"]["labels"]
        if {"http", "notification"} & set(worker_queues(worker)):
            assert _selects(policy["podSelector"], labels), worker["metadata"]["name"]
    ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule.get("ports", [])}
    assert {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 6379)} <= ports
    blocks = [
        t["ipBlock"] for rule in policy["egress"] for t in rule.get("to", []) if "ipBlock" in t
    ]
    assert blocks, "no ipBlock rule: workers could not reach the public internet"
    for probe in ["10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "127.0.0.1",
                  "100.100.100.200", "fd00:ec2::254", "fe80::1", "::1", "::ffff:10.0.0.1"]:
        assert not _allowed_by_ip_blocks(blocks, probe), f"egress to {probe} is allowed"
    for public in ["93.184.216.34", "2606:2800:220:1::1"]:
        assert _allowed_by_ip_blocks(blocks, public), f"egress to {public} is denied"


def _allowed_by_ip_blocks(blocks: list[dict[str, Any]], address: str) -> bool:
    ip = ipaddress.ip_address(address)
    for block in blocks:
        network = ipaddress.ip_network(block["cidr"])
        if ip.version != network.version or ip not in network:
            continue
        if not any(ip in ipaddress.ip_network(e) for e in block.get("except", [])):
            return True
    return False


def test_disruption_budgets_cover_api_scheduler_and_workers(overlay: Rendered) -> None:
    budgets = overlay.of_kind("PodDisruptionBudget")
    for workload in overlay.of_kind("Deployment"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if labels["app.kubernetes.io/component"] == "flower":
            continue  # one replica by design; nothing to keep available
        matching = [b for b in budgets if _selects(b["spec"]["selector"], labels)]
        assert len(matching) == 1, f"{workload['metadata']['name']}: {len(matching)} PDBs"
        budget = matching[0]["spec"]
        replicas = workload["spec"].get("replicas", 1)
        # A budget that allows no eviction at the workload's size would block node drains.
        if "minAvailable" in budget:
            assert budget["minAvailable"] < replicas, workload["metadata"]["name"]


def test_dev_logs_for_people_and_prod_logs_for_machines(rendered: dict[str, Rendered]) -> None:
    def log_format(overlay: str) -> str:
        return rendered[overlay].of_kind("ConfigMap")[0]["data"]["LOG_FORMAT"]

    assert log_format("dev") == "console"
    assert log_format("prod") == "json"
    prod = rendered["prod"]
    assert prod.named("Deployment", "flowyard-api")["spec"]["replicas"] >= 2
    assert prod.named("Deployment", "flowyard-scheduler")["spec"]["replicas"] >= 2
    assert not prod.of_kind("Secret"), "prod must not ship secrets in the manifests"


# Secrets the operator creates in the namespace (deploy/README.md, "Configure").
USER_SECRETS = {"flowyard-secrets", "flowyard-flower", "flowyard-keda-redis"}


def _references(overlay: Rendered) -> list[tuple[str, str, str | None, bool]]:
    """(kind, name, key, optional) of every ConfigMap/Secret reference in the overlay."""
    found: list[tuple[str, str, str | None, bool]] = []
    for workload in overlay.workloads():
        for container in containers(workload):
            for variable in container.get("env", []):
                source = variable.get("valueFrom", {})
                for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    if field in source:
                        ref = source[field]
                        found.append((kind, ref["name"], ref["key"], ref.get("optional", False)))
    for auth in overlay.of_kind("TriggerAuthentication"):
        for ref in auth["spec"].get("secretTargetRef", []):
            found.append(("Secret", ref["name"], ref["key"], False))
    return found


def test_every_config_and_secret_reference_resolves(overlay: Rendered) -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in overlay.objects}
    generated_secrets = bool(overlay.of_kind("Secret"))
    for kind, name, key, optional in _references(overlay):
        obj = objects.get((kind, name))
        if obj is None:
            # A Secret the overlay does not generate must be one the README tells users to make.
            assert kind == "Secret" and not generated_secrets and name in USER_SECRETS, (
                f"{overlay.overlay}: {kind} {name} is referenced but not rendered"
            )
            continue
        if key is not None and not optional:
            data = {**obj.get("data", {}), **obj.get("stringData", {})}
            assert key in data, f"{overlay.overlay}: {kind} {name} has no key {key}"
