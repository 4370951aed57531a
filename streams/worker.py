"""Start a Faust worker for the agents, never with the web server on 0.0.0.0."""

from __future__ import annotations

import ctypes
import gc
import os
import sys

# Table state is many small long-lived objects: with the default thresholds the cyclic
# collector's full passes stall a batch for 100+ ms (measured); collect less often.
GC_THRESHOLDS = (50_000, 50, 100)
# xgboost imports scikit-learn when it is installed (training uses it), which imports
# scipy.stats and pandas: ~95 MB resident (measured) that a worker never uses, since it only
# calls ``Booster.inplace_predict``. A None entry in ``sys.modules`` makes the import fail,
# so xgboost takes its path for "scikit-learn not installed".
NOT_IN_WORKER = ("sklearn",)


def skip_unused_imports() -> None:
    for name in NOT_IN_WORKER:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


# glibc gives each thread that allocates its own heap arena (up to 8 per core), and free
# memory in one arena serves no other: the worker's threads (entity replica, librdkafka,
# flushes) left more and more of it. 200 000 purchases, 30 simulated days: 425 -> 458 MB
# resident with the default, 423 -> 436 MB with 2 arenas (streams/memory_report.py).
M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> bool:
    """At start, before any thread: at most ``MALLOC_ARENAS`` (unless ``MALLOC_ARENA_MAX``
    says otherwise). False where there is no glibc ``mallopt``."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        return bool(ctypes.CDLL(None).mallopt(M_ARENA_MAX, MALLOC_ARENAS))
    except (OSError, AttributeError):
        return False


# Memory the worker frees stays in glibc's heap, on its free lists, until something asks for
# it back: between 500 k and 1 M simulated purchases the free heap grew from 19 to 49 MB
# (``malloc_mb.free`` in ``streams/memory_report.py``), most of the resident growth.
# ``malloc_trim`` gives the free pages back to the system (~9 ms for 200 MB freed, measured;
# microseconds when there is nothing to give); the worker asks every ``TRIM_EVERY_S``.
TRIM_EVERY_S = 30.0


def release_free_heap() -> bool:
    """Return the heap's free pages to the system. True when some were, False when none
    were or there is no glibc ``malloc_trim``."""
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError):
        return False


async def trim_heap() -> None:
    release_free_heap()


def freeze_start_up_heap() -> None:
    """What start-up built and keeps for the process's life (the modules, Faust's app, the
    model, rules, GeoIP data and user-agent patterns, the followers) out of the cyclic
    collector's passes (``gc.freeze``): each full pass walked it all again, ~130 000 objects
    in ~55 ms (measured), a pause of the batch it fell in. The garbage start-up left is
    collected first."""
    gc.collect()
    gc.freeze()


def faust_loglevel(level: str) -> str:
    """Faust's CLI spells levels crit/error/warn/info/debug."""
    level = level.lower()
    return {"warning": "warn", "critical": "crit", "fatal": "crit"}.get(level, level)


def warm_up() -> None:
    """Load the model, rules and blocklists and start the entity replica before Faust starts:
    built lazily in the first batch, they held Faust's event loop for seconds while it was
    resuming its streams (see streams/faust_compat.py, "Records skipped at start-up")."""
    import logging

    from streams.context import ctx

    try:
        _ = ctx.decider, ctx.replica, ctx.marks
    except Exception as exc:  # e.g. topics not created yet: built on the first batch instead
        logging.getLogger(__name__).warning("warm-up deferred: %s: %s", type(exc).__name__, exc)


def main(argv: list[str] | None = None) -> None:
    limit_malloc_arenas()
    skip_unused_imports()
    from infra.observe import MetricsBindError
    from infra.settings import get_settings
    from processors import netinfo
    from streams import (
        agents,  # noqa: F401  (registers the agents)
        health,
    )
    from streams.app import app

    stream = get_settings().stream
    # Faust creates its own folder but not the parents: a fresh SENTINEL_DATA_DIR is made here.
    stream.data_dir.mkdir(parents=True, exist_ok=True)
    level = faust_loglevel(stream.log_level)
    gc.set_threshold(*GC_THRESHOLDS)
    netinfo.warm()  # GeoIP data and user-agent patterns before the first batch, not in it
    try:
        health.start(get_settings())  # metrics, /healthz, /readyz; lag measured in a thread
    except MetricsBindError as exc:
        sys.exit(f"sentinel worker: {exc}")
    warm_up()
    freeze_start_up_heap()
    app.timer(interval=TRIM_EVERY_S)(trim_heap)
    if stream.memory_report:
        from streams import memory_report

        memory_report.install(app, stream.memory_report)
    sys.argv = ["sentinel-worker", "worker", "--without-web", f"--loglevel={level}", *(argv or [])]
    app.main()
