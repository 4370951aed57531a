"""Start a Faust worker for the agents, never with the web server on 0.0.0.0."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from infra.settings import get_settings
    from streams import agents  # noqa: F401  (registers the agents)
    from streams.app import app

    level = get_settings().stream.log_level.lower()
    sys.argv = ["sentinel-worker", "worker", "--without-web", f"--loglevel={level}", *(argv or [])]
    app.main()
