"""``sentinel bench codec --out FILE.json``: µs per value of the Avro codec (``schemas/codec.py``:
its fast path, ``schemas/native``) against fastavro on the same values in the same run (the
ceiling the fast path replaces: ``schemaless_writer`` / ``schemaless_reader`` with the parsed
schema), for simulated purchases and the Decisions made of them, both ways. It also counts
the values whose bytes (encoding) or decoded values (decoding) differ between the two: 0.

CPU time of this process is reported next to wall time, and the machine's load with it.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from fastavro import schemaless_reader, schemaless_writer

from infra import topics
from models.rules_bench import purchases_with_features, save_report
from schemas.codec import HEADER, AvroCodec
from schemas.registry import FileRegistry

BATCH = 500  # purchases per decide_batch call, as replay and the decide path bench


def simulated_values(purchases: int, seed: int) -> tuple[list[dict], list[dict]]:
    """The first ``purchases`` simulated purchases (their wallets' history applied before
    them) and the Decisions made of them."""
    from models.registry import load_model
    from models.simulator import SimConfig, simulate
    from processors.decide import Blocked, decide_batch
    from processors.rules import load_ruleset

    events = simulate(SimConfig(seed=seed, days=30, n_users=max(2000, purchases // 8)))
    rows = purchases_with_features(until_purchases(events, purchases))
    model, ruleset, decisions = load_model(), load_ruleset(), []
    for start in range(0, len(rows), BATCH):
        chunk = rows[start:start + BATCH]
        outcomes = decide_batch([p for p, _ in chunk], [f for _, f in chunk], model, ruleset,
                                Blocked(), datetime.now(UTC))
        decisions.extend(o.decision for o in outcomes)
    return [p for p, _ in rows], decisions


def until_purchases(events: Iterable[tuple[str, dict]], n: int) -> Iterator[tuple[str, dict]]:
    """``events`` up to and with the ``n``-th purchase."""
    seen = 0
    for kind, record in events:
        if seen >= n:
            return
        seen += kind == "purchase"
        yield kind, record


def timed(fn: Callable, values: list, repeat: int) -> dict:
    """The fastest of ``repeat`` passes of ``fn`` over ``values``: µs per value, wall and CPU."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        for value in values:
            fn(value)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    n = max(1, len(values))
    return {"wall_us": round(best_wall / n * 1e6, 2), "cpu_us": round(best_cpu / n * 1e6, 2)}


def compare(codec: AvroCodec, records: list[dict], repeat: int) -> dict:
    """Encoding and decoding of ``records``: the codec against fastavro."""
    header = HEADER.pack(0, codec.schema_id)

    def fastavro_encode(record: dict) -> bytes:
        out = io.BytesIO()
        out.write(header)
        schemaless_writer(out, codec.schema, record)
        return out.getvalue()

    def fastavro_decode(data: bytes) -> dict:
        body = io.BytesIO(data)
        body.seek(HEADER.size)
        return schemaless_reader(body, codec.schema, codec.schema)

    data = [codec.encode(r) for r in records]
    report = {
        "values": len(records),
        "encode": {"codec": timed(codec.encode, records, repeat),
                   "fastavro": timed(fastavro_encode, records, repeat)},
        "decode": {"codec": timed(codec.decode, data, repeat),
                   "fastavro": timed(fastavro_decode, data, repeat)},
        "bytes_differing": sum(d != fastavro_encode(r) for d, r in zip(data, records, strict=True)),
        "values_differing": sum(codec.decode(d) != fastavro_decode(d) for d in data),
    }
    for way in ("encode", "decode"):
        report[way]["ratio_to_fastavro_cpu"] = round(
            report[way]["codec"]["cpu_us"] / max(1e-9, report[way]["fastavro"]["cpu_us"]), 4)
    return report


def run(purchases: int, seed: int, repeat: int, registry_path: Path) -> dict:
    registry = FileRegistry(registry_path)
    bought, decided = simulated_values(purchases, seed)
    return {
        "benchmark": "codec",
        "purchase": compare(AvroCodec.for_topic(registry, topics.PURCHASES), bought, repeat),
        "decision": compare(AvroCodec.for_topic(registry, topics.DECISIONS), decided, repeat),
    }


def bench_codec(args) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        report = run(args.purchases, args.seed, args.repeat, Path(scratch) / "registry.json")
    report["simulation"] = {"seed": args.seed, "purchases": args.purchases}
    return save_report(report, args.out)


def add_bench_command(bench_subparsers) -> None:
    p = bench_subparsers.add_parser("codec", help="Avro codec µs per value: fast path vs fastavro")
    p.add_argument("--out", required=True, help="JSON report path")
    p.add_argument("--purchases", type=int, default=3_000)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--repeat", type=int, default=5, help="timed passes (the fastest is reported)")
    p.set_defaults(func=bench_codec)
