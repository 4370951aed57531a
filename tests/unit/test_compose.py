"""docker-compose.yml: accepted by compose, the services the design names, and environment
variables that the settings object actually reads."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.settings import ENV_VARS, REPO_ROOT

pytestmark = pytest.mark.unit
COMPOSE = REPO_ROOT / "docker-compose.yml"
SENTINEL_SERVICES = {"init", "worker", "gateway", "chain-listener"}


def _compose() -> dict:
    return yaml.safe_load(Path(COMPOSE).read_text())


def test_compose_names_the_stack_and_the_sentinel_services():
    services = set(_compose()["services"])
    assert {"kafka", "schema-registry", "postgres", "redis"} <= services
    assert SENTINEL_SERVICES <= services


def test_sentinel_services_set_only_variables_the_settings_read():
    services = _compose()["services"]
    for name in SENTINEL_SERVICES:
        env = set(services[name]["environment"])
        unknown = env - set(ENV_VARS)
        assert not unknown, f"{name}: not read by infra/settings.py: {sorted(unknown)}"
        for required in ("KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "POSTGRES_URL", "REDIS_URL"):
            assert required in env, f"{name} lacks {required}"


def test_compose_config_accepts_the_file():
    if shutil.which("docker-compose"):
        argv = ["docker-compose", "-f", str(COMPOSE), "config", "-q"]
    else:
        argv = ["docker", "compose", "-f", str(COMPOSE), "config", "-q"]
    env = {**os.environ, "WEBHOOK_SECRETS": "compose-check"}
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
