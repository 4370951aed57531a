"""What the worker does for its memory at start-up: it skips scikit-learn (and what it drags
in: same model scores, ~95 MB less), limits glibc's heap arenas, and gives freed heap back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.registry import load_model

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]

SCORE = """
import json, sys
import numpy as np
from streams.worker import skip_unused_imports
skip_unused_imports()
from models.registry import load_model
import xgboost.compat
model = load_model()
X = np.random.default_rng(5).random((64, len(model.feature_names)), dtype=np.float32)
print(json.dumps({"p": model.predict(X).tolist(), "top": model.top_contributions(X),
                  "sklearn": xgboost.compat.SKLEARN_INSTALLED,
                  "loaded": sorted(m for m in ("sklearn", "pandas", "scipy.stats")
                                   if sys.modules.get(m) is not None)}))
"""


def test_the_champion_scores_the_same_without_scikit_learn():
    out = subprocess.run([sys.executable, "-c", SCORE], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    worker = json.loads(out.stdout)
    assert worker["sklearn"] is False and worker["loaded"] == []
    model = load_model()
    X = np.random.default_rng(5).random((64, len(model.feature_names)), dtype=np.float32)
    assert worker["p"] == model.predict(X).tolist()
    assert worker["top"] == json.loads(json.dumps(model.top_contributions(X)))


ARENAS = """
import json
from streams.worker import limit_malloc_arenas
print(json.dumps(limit_malloc_arenas()))
"""


@pytest.mark.parametrize(("variable", "limited"), [(None, True), ("4", False)])
def test_heap_arenas_are_limited_unless_the_operator_chose_a_number(variable, limited):
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if variable:
        env["MALLOC_ARENA_MAX"] = variable
    out = subprocess.run([sys.executable, "-c", ARENAS], capture_output=True, text=True,
                         check=True, env={**env, "PYTHONPATH": str(ROOT)})
    assert json.loads(out.stdout) is limited


TRIM = """
import json
from streams.worker import release_free_heap
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
blocks = [bytes(2000) + bytes([i % 256]) for i in range(100_000)]  # ~200 MB through malloc
pinned = bytes(3000)  # above them: the heap cannot shrink by its top when they are freed
del blocks
before = rss_mb()
trimmed = release_free_heap()
print(json.dumps({"before": before, "after": rss_mb(), "trimmed": trimmed}))
"""


def test_the_worker_gives_freed_heap_back_to_the_system():
    out = subprocess.run([sys.executable, "-c", TRIM], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    result = json.loads(out.stdout)
    assert result["trimmed"] is True
    assert result["before"] - result["after"] > 150, result  # of the ~200 MB freed


FREEZE = """
import gc, json
from streams.worker import freeze_start_up_heap
kept = [[i] for i in range(5000)]  # start-up's long-lived objects
cycle = []; cycle.append(cycle); del cycle  # start-up's garbage
before = gc.get_freeze_count()
freeze_start_up_heap()
tracked = {id(o) for o in gc.get_objects()}
print(json.dumps({"frozen": gc.get_freeze_count() - before,
                  "walked": sum(id(o) in tracked for o in kept),
                  "garbage_left": gc.collect()}))
"""


def test_start_up_heap_is_frozen_out_of_the_collector_and_its_garbage_collected_first():
    out = subprocess.run([sys.executable, "-c", FREEZE], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    frozen = json.loads(out.stdout)
    assert frozen["frozen"] >= 5000  # the kept lists at least
    assert frozen["walked"] == 0  # none of them in any generation a pass walks
    assert frozen["garbage_left"] == 0  # the cycle was collected before the freeze
