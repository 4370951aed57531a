"""Webhook secrets: at least 32 bytes, never a default printed in a README, a development
secret generated under the data directory, and never that one on a non-loopback address."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from infra.secrets import MIN_SECRET_BYTES, WeakSetup, check_bind, webhook_secrets
from infra.settings import REPO_ROOT, Settings, StreamSettings, WebhookSettings

pytestmark = pytest.mark.unit
STRONG = "k" * MIN_SECRET_BYTES


def settings(data_dir: Path, secrets: str | None = None) -> Settings:
    hook = WebhookSettings(secrets=secrets) if secrets is not None else WebhookSettings()
    return Settings(webhook=hook, stream=StreamSettings(data_dir=data_dir))


@pytest.mark.parametrize("weak", ["a", "dev-secret-change-me", "k" * 31, f"{STRONG}, short"])
def test_secrets_under_32_bytes_are_refused_naming_the_variable(weak, monkeypatch) -> None:
    monkeypatch.delenv("WEBHOOK_SECRETS", raising=False)
    with pytest.raises(ValidationError, match="32 bytes"):
        WebhookSettings(secrets=weak)


def test_strong_secrets_and_a_rotation_pair_are_accepted(tmp_path) -> None:
    other = "o" * 40
    assert webhook_secrets(settings(tmp_path, f"{STRONG}, {other}")) == [
        STRONG.encode(), other.encode()]  # fmt: skip
    assert not (tmp_path / "webhook-secret").exists()  # nothing generated when configured


def test_without_secrets_one_is_generated_under_the_data_dir_once(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("WEBHOOK_SECRETS", raising=False)
    [first] = webhook_secrets(settings(tmp_path))
    [again] = webhook_secrets(settings(tmp_path))
    assert first == again and len(first) >= MIN_SECRET_BYTES
    assert stat.S_IMODE((tmp_path / "webhook-secret").stat().st_mode) == 0o600
    assert webhook_secrets(settings(tmp_path / "other")) != [first]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_the_development_secret_may_serve_loopback(host, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("WEBHOOK_SECRETS", raising=False)
    check_bind(host, settings(tmp_path))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "gateway.example.com"])
def test_the_development_secret_never_serves_other_addresses(host, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("WEBHOOK_SECRETS", raising=False)
    with pytest.raises(WeakSetup, match="WEBHOOK_SECRETS"):
        check_bind(host, settings(tmp_path))
    check_bind(host, settings(tmp_path, STRONG))  # a configured secret may


def test_no_readme_prints_a_usable_secret() -> None:
    for readme in (REPO_ROOT / "README.md", REPO_ROOT / "connectors" / "README.md"):
        assert "dev-secret-change-me" not in readme.read_text(), readme


def test_sentinel_gateway_refuses_a_public_bind_with_the_development_secret(
        tmp_path, monkeypatch, capsys) -> None:
    from infra import cli
    from infra.settings import get_settings

    monkeypatch.delenv("WEBHOOK_SECRETS", raising=False)
    monkeypatch.setenv("SENTINEL_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert cli.main(["gateway", "--host", "0.0.0.0"]) == 2  # before binding anything
    finally:
        get_settings.cache_clear()
    assert "WEBHOOK_SECRETS" in capsys.readouterr().err
