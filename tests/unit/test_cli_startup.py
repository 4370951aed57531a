"""``sentinel`` starts in about a second: building its parser (every subcommand of every
folder) loads no model library. XGBoost (and the scikit-learn it pulls in) took ~3 s of every
command's start, ``sentinel users add`` and ``sentinel status`` included; only the commands
that score or train load it, when they run."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

HEAVY = ("xgboost", "sklearn", "pandas", "faust")


def test_building_the_command_line_loads_no_model_or_stream_library() -> None:
    code = ("import sys; from infra.cli import build_parser; build_parser(); "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    assert out.stdout.split() == []
