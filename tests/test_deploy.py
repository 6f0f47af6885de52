"""deploy/: the compose file, the Prometheus configuration and the Kubernetes manifests are valid YAML, hold
what docs/deploy.md says they hold, and run tailor with options its command line takes."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path
from typing import Any

import yaml

from tailor.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
# What `tailor ingest` is run with here: the options the scale-out issue fixes, and its metrics endpoint.
INGEST_OPTIONS = {"--redis", "--stream", "--group", "--metrics-host", "--metrics-port"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def manifests() -> list[dict[str, Any]]:
    return [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in documents(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests() if doc["kind"] == kind]


def compose() -> dict[str, Any]:
    return documents(DEPLOY / "docker-compose.yml")[0]


def accepted(command: list[str]) -> None:
    """``command`` (tailor's arguments) parses as the command line would parse it; fails with argparse's words."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if command[0] not in commands:
        assert command[0] == "ingest", command
        given = {word for word in command if word.startswith("--")}
        assert given <= INGEST_OPTIONS, given - INGEST_OPTIONS
        return
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        try:
            parser.parse_args(command)
        except SystemExit as exc:
            raise AssertionError(f"tailor {' '.join(command)}: {errors.getvalue()}") from exc


def test_every_file_is_yaml() -> None:
    files = [*DEPLOY.glob("*.yml"), *(DEPLOY / "k8s").glob("*.yaml")]
    assert len(files) >= 6
    for path in files:
        assert documents(path), path


def test_compose_runs_three_servers_two_ingesters_and_a_cluster_of_three_masters_with_replicas() -> None:
    services = compose()["services"]
    servers = [name for name, s in services.items() if s.get("command", [None])[0] == "serve"]
    ingesters = [name for name, s in services.items() if s.get("command", [None])[0] == "ingest"]
    nodes = [name for name, s in services.items() if "--cluster-enabled" in s.get("command", [])]
    assert (len(servers), len(ingesters), len(nodes)) == (3, 2, 6)
    create = services["redis-cluster-init"]["command"][0]
    assert "--cluster create" in create and "--cluster-replicas 1" in create  # 6 nodes: 3 masters, 3 replicas
    for name in (*servers, *ingesters):
        command = services[name]["command"]
        accepted(command)
        assert command[command.index("--redis") + 1] == "redis://redis-1:6379"
        assert services[name]["depends_on"]["redis-cluster-init"]["condition"] == "service_completed_successfully"
    for name in servers:
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
    ingest = services[ingesters[0]]["command"]
    assert ingest[ingest.index("--stream") + 1] == "tailor:events"
    assert ingest[ingest.index("--group") + 1] == "ingest"


def test_prometheus_scrapes_every_server_and_ingester() -> None:
    services = compose()["services"]
    scraped = {
        target
        for job in documents(DEPLOY / "prometheus.yml")[0]["scrape_configs"]
        for config in job["static_configs"]
        for target in config["targets"]
    }
    expected = set()
    for name, service in services.items():
        command = service.get("command", [None])
        if command[0] == "serve":
            expected.add(f"{name}:{command[command.index('--port') + 1]}")
        elif command[0] == "ingest":
            expected.add(f"{name}:{command[command.index('--metrics-port') + 1]}")
    assert scraped == expected
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]


def test_the_kubernetes_manifests_hold_a_fleet_with_probes_a_budget_and_an_autoscaler() -> None:
    deployments = {doc["metadata"]["name"]: doc for doc in of_kind("Deployment")}
    server, ingest = deployments["tailor"], deployments["tailor-ingest"]
    pod = server["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert server["spec"]["selector"]["matchLabels"].items() <= labels.items()
    container = pod["spec"]["containers"][0]
    accepted(container["args"])
    accepted(ingest["spec"]["template"]["spec"]["containers"][0]["args"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"] == "1"  # what the autoscaler's utilization is of

    (budget,) = of_kind("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (scaler,) = of_kind("HorizontalPodAutoscaler")
    assert scaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tailor"}
    (cpu,) = scaler["spec"]["metrics"]
    assert cpu["resource"]["name"] == "cpu"
    assert scaler["spec"]["minReplicas"] >= 2  # the budget lets one go: one must stay
    (service,) = of_kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()

    # The rules are mounted where the servers are told to read them, and every file the ruleset's model
    # lines name is in the volume.
    (mount,) = container["volumeMounts"]
    assert container["args"][1] == mount["mountPath"]
    (volume,) = pod["spec"]["volumes"]
    sources = volume["projected"]["sources"]
    paths = {item["path"] for source in sources for item in source["configMap"].get("items", [])}
    assert paths == {"models/p_click.onnx", "models/p_click.features"}
    assert all((DEPLOY.parent / "rulesets" / "retail" / path).is_file() for path in paths)
