"""Webhook secrets: configured (``WEBHOOK_SECRETS``, each at least 32 bytes) or, for the
embedded development stack only, generated once into ``<data dir>/webhook-secret`` (mode
0600). A gateway with the generated secret serves the loopback only: ``check_bind`` refuses
any other address, so a development setup cannot be exposed by accident.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
from pathlib import Path

from infra.settings import MIN_SECRET_BYTES, Settings

SECRET_FILE = "webhook-secret"
__all__ = ["MIN_SECRET_BYTES", "WeakSetup", "check_bind", "is_development", "webhook_secrets"]


class WeakSetup(RuntimeError):
    """The gateway would be reachable from other hosts with the development secret."""


def is_development(settings: Settings) -> bool:
    """No secret configured: the generated development secret is in use."""
    return not settings.webhook.configured_secrets()


def webhook_secrets(settings: Settings) -> list[bytes]:
    """The configured secrets, else the development secret (generated on first use)."""
    return settings.webhook.configured_secrets() or [_development_secret(settings.stream.data_dir)]


def check_bind(host: str, settings: Settings) -> None:
    """Raise ``WeakSetup`` when ``host`` is not a loopback address and no secret is set."""
    if is_development(settings) and not _loopback(host):
        raise WeakSetup(
            f"refusing to serve {host} with the development webhook secret: set "
            f"WEBHOOK_SECRETS (at least {MIN_SECRET_BYTES} bytes, e.g. `openssl rand -hex 32`)"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def _development_secret(data_dir: Path) -> bytes:
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".webhook-secret-")  # mode 0600
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.close(fd)
        os.link(tmp, path)  # atomic; loses to a concurrent first use, whose secret wins
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path.read_bytes().strip()
