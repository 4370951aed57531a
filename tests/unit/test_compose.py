"""docker-compose.yml: accepted by compose, the stack the design names, the services of the
registry (infra/services.py) with the same `sentinel` commands, every command a real
subcommand, health checks, no default passwords, and only variables something reads."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.cli import build_parser
from infra.services import SERVICES, by_name
from infra.settings import ENV_VARS, REPO_ROOT

pytestmark = pytest.mark.unit
COMPOSE = REPO_ROOT / "docker-compose.yml"
SECRETS = {"WEBHOOK_SECRETS": "compose-check", "POSTGRES_PASSWORD": "p", "REDIS_PASSWORD": "r",
           "KAFKA_ADMIN_PASSWORD": "a", "KAFKA_CONTROLLER_PASSWORD": "c",
           **{f"KAFKA_PASSWORD_{p}": p for p in ("GATEWAY", "CHAIN", "WORKER", "SINK", "REGISTRY")}}
# Read outside infra/settings.py: the model registry's folder (models/registry.py).
OTHER_READERS = {"SENTINEL_MODEL_DIR"}


def _compose() -> dict:
    return yaml.safe_load(Path(COMPOSE).read_text())


def _sentinel_services() -> dict[str, dict]:
    return {name: spec for name, spec in _compose()["services"].items()
            if spec.get("image") == "sentinel:latest"}


def _commands() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return set(sub.choices)


def test_compose_names_the_stack():
    services = set(_compose()["services"])
    assert {"kafka", "schema-registry", "postgres", "redis", "prometheus", "init"} <= services


def test_compose_runs_the_registry_services_with_the_same_commands():
    compose = _sentinel_services()
    assert set(compose) - {"init"} == {s.name for s in SERVICES}
    for service in SERVICES:
        assert compose[service.name]["command"] == list(service.argv), service.name


def test_every_compose_command_is_a_real_sentinel_subcommand():
    parser, commands = build_parser(), _commands()
    init = _sentinel_services()["init"]["entrypoint"]
    assert init[:2] == ["sh", "-c"]
    argvs = [shlex.split(part)[1:] for part in init[2].split("&&")]
    for name, spec in _sentinel_services().items():
        slot = by_name()[name].needs_command if name in by_name() else None
        if slot and slot not in commands:
            assert spec.get("profiles"), f"{name}: a slot must stay out of the default profile"
            continue
        if name != "init":
            argvs.append(spec["command"])
        health = spec.get("healthcheck", {}).get("test", [])
        if health[:2] == ["CMD", "sentinel"]:
            argvs.append(health[2:])
    for argv in argvs:
        assert parser.parse_args(argv).command == argv[0], argv


def test_dependencies_and_health_checks_follow_the_registry():
    compose = _sentinel_services()
    for service in SERVICES:
        spec = compose[service.name]
        depends = spec.get("depends_on", {})
        assert depends["init"]["condition"] == "service_completed_successfully", service.name
        wanted = {d for d in service.depends_on if d in by_name()} | (
            {"redis"} & set(service.depends_on))
        assert wanted <= set(depends), f"{service.name}: depends_on lacks {wanted - set(depends)}"
        if service.health.kind != "running" and not service.needs_command:
            test = spec["healthcheck"]["test"]
            assert test == ["CMD", "sentinel", "health", service.name], service.name


def test_state_and_models_on_volumes_and_workers_scale():
    compose = _sentinel_services()
    assert "model-registry:/models" in compose["worker"]["volumes"]
    assert "SENTINEL_STORE" not in compose["worker"]["environment"]  # memory store only
    assert compose["worker"]["deploy"]["replicas"] >= 2
    assert "ports" not in compose["worker"]  # replicas cannot share a host port
    named = set(_compose()["volumes"])
    assert {"kafka-data", "postgres-data", "redis-data", "model-registry"} <= named


def test_no_password_or_secret_has_a_default():
    text = COMPOSE.read_text()
    for name, op, default in re.findall(r"\$\{(\w*(?:PASSWORD|SECRET)\w*)(:?[-?])([^}]*)\}", text):
        assert op == ":?" or default == "", f"{name} has a default: {default!r}"


def test_sentinel_services_set_only_variables_something_reads():
    for name, spec in _sentinel_services().items():
        env = set(spec["environment"])
        unknown = env - set(ENV_VARS) - OTHER_READERS
        assert not unknown, f"{name}: not read by any settings: {sorted(unknown)}"
        for required in ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "POSTGRES_URL", "REDIS_URL"):
            assert required in env, f"{name} lacks {required}"


def test_prometheus_loads_the_projects_alert_rules():
    prometheus = _compose()["services"]["prometheus"]
    assert "./infra/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    config = yaml.safe_load((REPO_ROOT / "infra/prometheus/prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_compose_config_accepts_the_file():
    if shutil.which("docker-compose"):
        argv = ["docker-compose", "-f", str(COMPOSE), "config", "-q"]
    else:
        argv = ["docker", "compose", "-f", str(COMPOSE), "config", "-q"]
    result = subprocess.run(argv, env={**os.environ, **SECRETS}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_compose_config_refuses_to_start_without_the_passwords():
    if not shutil.which("docker-compose"):
        pytest.skip("docker-compose (v1) names the missing variable; checked where it exists")
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"],
                            env={**env, **{k: v for k, v in SECRETS.items()
                                           if k != "POSTGRES_PASSWORD"}},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "POSTGRES_PASSWORD" in result.stderr


def test_kafka_authenticates_every_client_and_each_service_has_its_own_principal():
    from infra.kafka.acls import MECHANISM, PRINCIPALS

    compose = _compose()["services"]
    start = (REPO_ROOT / "infra/kafka/compose/start.sh").read_text()
    assert "/etc/sentinel-kafka/sasl.properties" in start  # the file the ACL test runs
    assert "./infra/kafka:/etc/sentinel-kafka:ro" in compose["kafka"]["volumes"]
    users = {}
    for name, spec in _sentinel_services().items():
        env = spec["environment"]
        assert (env["KAFKA_SECURITY_PROTOCOL"], env["KAFKA_SASL_MECHANISM"]) == (
            "SASL_PLAINTEXT", MECHANISM), name
        users[name] = env.get("KAFKA_SASL_USERNAME")
    assert users["init"] == "admin"
    assert {users[n] for n in ("gateway", "worker", "chain-listener")} == {"gateway", "worker",
                                                                            "chain"}
    assert {users[n] for n in ("sink-postgres", "sink-redis", "sink-siem")} == {"sink"}
    assert set(users.values()) - {None, "admin"} <= set(PRINCIPALS)
    registry = compose["schema-registry"]["environment"]
    assert 'username="registry"' in registry["SCHEMA_REGISTRY_KAFKASTORE_SASL_JAAS_CONFIG"]


def test_prometheus_scrapes_every_process_on_its_metrics_port(tmp_path, monkeypatch):
    from infra.settings import MetricsSettings

    monkeypatch.delenv("SENTINEL_PORT_OFFSET", raising=False)  # the defaults, as in compose

    def default(name: str) -> int:
        return MetricsSettings.model_fields[f"{name}_port"].default_factory()

    ports = {"gateway": 8080, "worker": default("worker"),
             "sink-postgres": default("sink_postgres"), "sink-redis": default("sink_redis"),
             "sink-siem": default("sink_siem"), "chain-listener": default("chain"),
             "maintenance": default("maintenance")}
    config = yaml.safe_load((REPO_ROOT / "infra/prometheus/prometheus.yml").read_text())
    scraped = {job["job_name"]: job["dns_sd_configs"][0] for job in config["scrape_configs"]}
    assert {name: sd["port"] for name, sd in scraped.items()} == ports
    assert all(sd["names"] == [name] for name, sd in scraped.items())
    assert {s.name for s in SERVICES if not s.needs_command} == set(scraped)
    if shutil.which("promtool"):  # the scrape part; the rules are checked by test_alert_rules
        config.pop("rule_files")
        (tmp_path / "p.yml").write_text(yaml.safe_dump(config))
        done = subprocess.run(["promtool", "check", "config", str(tmp_path / "p.yml")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
