"""The deployment as shipped: every kustomize overlay rendered by a real kubectl, validated
against the Kubernetes schemas in strict mode, and read the way an operator would (probes that
reach a listening port, restricted containers, Secrets only where used, metrics scraped);
the Dockerfile linted by hadolint; the compose file validated by docker compose itself."""

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import compose
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.37.0"
OVERLAYS = ("dev", "prod", "prod+service-monitor", "prod+tls")
APP_MODULES = {"breaker_svc": "BREAKER", "job_svc": "JOB", "campaign_svc": "CAMPAIGN"}
DEMO_SERVICES = ("providers", "worker")
# The secret variables each command reads; a container is given no other.
SECRETS_READ = {
    "breaker_svc": {"REDIS_URL", "ADMIN_TOKEN", "SERVICE_TOKEN"},
    "job_svc": {"JOB_DATABASE_URL", "ADMIN_TOKEN", "SERVICE_TOKEN"},
    "campaign_svc": {"CAMPAIGN_DATABASE_URL", "ADMIN_TOKEN", "SERVICE_TOKEN"},
    "services.migrate job_svc": {"JOB_DATABASE_URL"},
    "services.migrate campaign_svc": {"CAMPAIGN_DATABASE_URL"},
    "postgres": {"POSTGRES_PASSWORD"},
    "redis": set(),
}


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize` of an overlay; `a+b` is overlay a with component b."""
    base, _, component = overlay.partition("+")
    with tempfile.TemporaryDirectory() as scratch:
        root = K8S / "overlays" / base
        if component:
            # kustomize takes relative paths only.
            root = Path(scratch)
            (root / "kustomization.yaml").write_text(
                f"resources: [{os.path.relpath(K8S / 'overlays' / base, root)}]\n"
                f"components: [{os.path.relpath(K8S / 'components' / component, root)}]\n"
            )
        output = subprocess.run(
            [str(BIN / "kubectl"), "kustomize", str(root)], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    return tuple(doc for doc in yaml.safe_load_all(output) if doc)


def of_kind(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in rendered(overlay) if doc["kind"] == kind]


def workloads(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in rendered(overlay) if doc["kind"] in ("Deployment", "StatefulSet")]


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def program(container: dict[str, Any]) -> str:
    """What a container runs: `job_svc`, `services.migrate job_svc`, or the image's name."""
    command = container.get("command") or []
    if command[:2] == ["python", "-m"]:
        return " ".join(command[2:])
    return container["image"].split(":")[0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def is_long_running(container: dict[str, Any], pod_spec: dict[str, Any]) -> bool:
    return container in pod_spec["containers"] or container.get("restartPolicy") == "Always"


def test_every_resource_of_every_overlay_is_valid_in_strict_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    # kubernetes-validate parses its multi-megabyte schema files again for every resource;
    # they are read-only data, so one parse each is enough.
    monkeypatch.setattr(kubernetes_validate.utils, "schema_contents", cache(kubernetes_validate.utils.schema_contents))
    # Overlays share most resources: each distinct one is validated once.
    distinct = {json.dumps(doc, sort_keys=True): doc for overlay in (*OVERLAYS, "dev+tls") for doc in rendered(overlay)}
    for doc in distinct.values():
        if doc["kind"] == "ServiceMonitor":  # a CRD: no schema in Kubernetes itself
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    for overlay in OVERLAYS:
        assert {"Deployment", "Service", "NetworkPolicy", "ConfigMap"} <= {doc["kind"] for doc in rendered(overlay)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_restricted_and_has_resources(overlay: str) -> None:
    for workload in workloads(overlay):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in containers(pod):
            where = f"{workload['metadata']['name']}/{container['name']}"
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"], where
            # A read-only root: every writable path is a volume.
            assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])} or program(container) == "redis", where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_grpc_probe_reaches_a_port_its_container_listens_on(overlay: str) -> None:
    probed = 0
    for workload in workloads(overlay):
        pod = workload["spec"]["template"]["spec"]
        for container in containers(pod):
            module = program(container)
            if module not in APP_MODULES:
                continue
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert is_long_running(container, pod), where
            env = env_of(container)
            prefix = APP_MODULES[module]
            declared = {p["containerPort"] for p in container["ports"]}
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                port = container[kind]["grpc"]["port"]
                # The kubelet dials the pod IP: the port must be one the service binds, on an
                # address that includes the pod IP.
                assert str(port) in (env.get(f"{prefix}_PORT"), env.get(f"{prefix}_HEALTH_PORT")), f"{where} {kind}"
                assert env.get(f"{prefix}_HOST") in ("0.0.0.0", "::", {"fieldRef": {"fieldPath": "status.podIP"}}), where
                assert port in declared, f"{where} {kind}"
                probed += 1
    assert probed >= 9


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_job_and_campaign_pods_run_their_breaker_as_a_native_sidecar_they_dial_on_localhost(overlay: str) -> None:
    for name in ("job-svc", "campaign-svc"):
        (deployment,) = [w for w in workloads(overlay) if w["metadata"]["name"] == name]
        pod = deployment["spec"]["template"]["spec"]
        (sidecar,) = [c for c in pod.get("initContainers", []) if program(c) == "breaker_svc"]
        assert sidecar["restartPolicy"] == "Always"
        (service,) = pod["containers"]
        assert env_of(service)["BREAKER_TARGET"] == f"127.0.0.1:{env_of(sidecar)['BREAKER_PORT']}"
        (migrate,) = [c for c in pod["initContainers"] if program(c).startswith("services.migrate")]
        assert program(migrate) == f"services.migrate {program(service)}" and "restartPolicy" not in migrate


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_split_by_purpose_and_given_only_to_the_containers_that_read_them(overlay: str) -> None:
    seen = set()
    for workload in workloads(overlay):
        for container in containers(workload["spec"]["template"]["spec"]):
            assert not any("secretRef" in source for source in container.get("envFrom", [])), container["name"]
            keys = {v["secretKeyRef"]["key"] for v in env_of(container).values() if isinstance(v, dict) and "secretKeyRef" in v}
            assert keys <= SECRETS_READ[program(container)], f"{container['name']}: {keys}"
            seen |= keys
    assert {"REDIS_URL", "JOB_DATABASE_URL", "CAMPAIGN_DATABASE_URL", "ADMIN_TOKEN", "SERVICE_TOKEN"} <= seen
    for secret in of_kind(overlay, "Secret"):
        assert len(secret["data"]) == 1, secret["metadata"]["name"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_metrics_port_sidecars_included_is_on_a_service_with_scrape_annotations(overlay: str) -> None:
    services = of_kind(overlay, "Service")
    for workload in workloads(overlay):
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        for container in containers(workload["spec"]["template"]["spec"]):
            metrics = [value for name, value in env_of(container).items() if name.endswith("_METRICS_PORT")]
            if not metrics:
                continue
            (port,) = metrics
            scraping = [
                s for s in services
                if selects(s["spec"]["selector"], pod_labels)
                and s["metadata"]["annotations"].get("prometheus.io/scrape") == "true"
                and s["metadata"]["annotations"]["prometheus.io/port"] == port
            ]
            assert len(scraping) == 1, f"{workload['metadata']['name']}/{container['name']}"
            assert scraping[0]["metadata"]["labels"]["graceful-pause/metrics"] == "true"
            assert [p["name"] for p in scraping[0]["spec"]["ports"] if p["port"] == int(port)] == ["metrics"]


@pytest.mark.parametrize("overlay", ["dev+tls", "prod+tls"])
def test_the_tls_component_gives_every_server_and_internal_client_the_pod_certificate(overlay: str) -> None:
    tls_variables = {"TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE", "TLS_CLIENT_CA_FILE"}
    served = 0
    for workload in workloads(overlay):
        pod = workload["spec"]["template"]["spec"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
        for container in containers(pod):
            env = env_of(container)
            if program(container) not in APP_MODULES:
                assert not tls_variables & set(env), container["name"]
                continue
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            for variable in tls_variables:
                directory, file = env[variable].rsplit("/", 1)
                assert secrets[mounts[directory]] == "graceful-pause-tls" and file in ("tls.crt", "tls.key", "ca.crt")
            served += 1
    assert served == 5  # breaker-svc, job-svc and its sidecar, campaign-svc and its sidecar


def test_the_service_monitor_component_scrapes_every_labelled_service() -> None:
    (monitor,) = of_kind("prod+service-monitor", "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == {"graceful-pause/metrics": "true"}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert of_kind("prod", "ServiceMonitor") == []


def test_dev_is_one_node_with_its_own_redis_and_postgres_and_prod_is_three_replicas_with_budgets() -> None:
    dev = {w["metadata"]["name"]: w["spec"]["replicas"] for w in workloads("dev")}
    assert dev == {"breaker-svc": 1, "job-svc": 1, "campaign-svc": 1, "redis": 1, "postgres": 1}
    prod = {w["metadata"]["name"]: w["spec"]["replicas"] for w in workloads("prod")}
    assert prod == {"breaker-svc": 3, "job-svc": 3, "campaign-svc": 3}
    budgets = {b["metadata"]["name"]: b["spec"] for b in of_kind("prod", "PodDisruptionBudget")}
    assert budgets == {
        name: {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}} for name in prod
    }
    assert of_kind("prod", "Secret") == []  # external: made by the operator's secret store
    initdb = (K8S / "overlays" / "dev" / "initdb.sql").read_text()
    for secret in of_kind("dev", "Secret"):
        for key, value in secret["data"].items():
            if key.endswith("_DATABASE_URL"):
                database = base64.b64decode(value).decode().rsplit("/", 1)[1]
                assert f"CREATE DATABASE {database};" in initdb


def ingress_ports(policy: dict[str, Any]) -> set[int]:
    return {p["port"] for rule in policy["spec"].get("ingress", []) for p in rule.get("ports", [])}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_network_policies_deny_by_default_and_never_open_a_sidecar_port(overlay: str) -> None:
    policies = of_kind(overlay, "NetworkPolicy")
    (deny,) = [p for p in policies if p["metadata"]["name"] == "graceful-pause-default-deny"]
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny["spec"]
    for workload in workloads(overlay):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        applying = [p for p in policies if selects(p["spec"]["podSelector"].get("matchLabels", {}), labels)]
        assert applying, workload["metadata"]["name"]
        open_ports = set().union(*(ingress_ports(p) for p in applying))
        if workload["metadata"]["name"] in ("job-svc", "campaign-svc"):
            assert 50051 not in open_ports  # the breaker sidecar answers on 127.0.0.1 only


def test_no_manifest_outside_the_kustomize_tree() -> None:
    assert sorted(p.name for p in K8S.iterdir()) == ["base", "components", "overlays"]


# --- the image ------------------------------------------------------------------------------


def test_the_dockerfile_is_hadolint_clean_pinned_and_non_root() -> None:
    dockerfile = REPO / "deploy" / "Dockerfile"
    result = subprocess.run([str(BIN / "hadolint"), str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    (base,) = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0].isdigit() and users[-1] != "0"
    # Every package the image installs is one the Dockerfile copies in.
    copied = set(re.findall(r"^COPY (\w+) ", text, re.MULTILINE))
    assert set(APP_MODULES) | {"services", "gen"} <= copied


# --- docker compose -------------------------------------------------------------------------


@cache
def compose_config() -> dict[str, Any]:
    """The compose file as docker compose itself reads it (validated against its schema)."""
    binary = Path(compose.__file__).parent / "docker-compose"
    result = subprocess.run(
        [str(binary), "-f", str(REPO / "deploy" / "compose.yaml"), "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "DOCKER_HOST": "unix:///nonexistent"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_runs_two_replicas_of_each_service_on_one_redis_and_postgres() -> None:
    services = compose_config()["services"]
    assert set(services) == {"redis", "postgres", "breaker", "job", "campaign", *DEMO_SERVICES}
    modules = {}
    for name, service in services.items():
        if name in ("redis", "postgres", *DEMO_SERVICES):
            continue
        assert service["healthcheck"]["test"], name
        assert service["deploy"]["replicas"] == 2, name
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        module = service["command"][-1]
        modules[name] = module
        env = service["environment"]
        prefix = APP_MODULES[module]
        assert env[f"{prefix}_HOST"] == "0.0.0.0"
        health_target = service["healthcheck"]["test"][-1]
        assert health_target == f"127.0.0.1:{env[f'{prefix}_PORT']}", name
        assert [p["target"] for p in service["ports"]] == [int(env[f"{prefix}_PORT"])], name
    # Each peer address names a compose service, on the port that service listens on, and the
    # service waits until that peer is healthy.
    for name, service in services.items():
        env = service.get("environment", {})
        for variable, module in (("BREAKER_TARGET", "breaker_svc"), ("JOB_TARGET", "job_svc")):
            if variable in env:
                host, port = env[variable].split(":")
                assert modules[host] == module
                assert port == services[host]["environment"][f"{APP_MODULES[module]}_PORT"]
                assert service["depends_on"][host]["condition"] == "service_healthy"
        for variable, peer in (("REDIS_URL", "redis"), ("JOB_DATABASE_URL", "postgres"), ("CAMPAIGN_DATABASE_URL", "postgres")):
            if variable in env:
                assert f"@{peer}:" in env[variable] or f"//{peer}:" in env[variable]
                assert service["depends_on"][peer]["condition"] == "service_healthy"
    # The demo's workers reach its providers, which listen where their health check looks.
    providers = services["providers"]
    port = providers["environment"]["PROVIDERS_PORT"]
    assert providers["environment"]["PROVIDERS_HOST"] == "0.0.0.0"
    assert providers["healthcheck"]["test"][-1] == f"127.0.0.1:{port}"
    assert services["worker"]["environment"]["PROVIDERS_TARGET"] == f"providers:{port}"
    assert services["worker"]["depends_on"]["providers"]["condition"] == "service_healthy"
