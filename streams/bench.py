"""``sentinel bench pipeline --out FILE.json``: throughput, latency and memory of the
pipeline on the embedded stack (or whatever the settings point at), in one run:

- ``broker_ceiling_per_s``: confluent-kafka produce, then consume, of the same records;
- ``faust_ceiling_per_s``: a Faust agent that only iterates those records;
- ``events_per_s``: purchases pre-loaded on the purchase topic, workers started, then
  from the first to the last decision on the decision topic that arrived once the workers'
  consumer group was stable with all of them (sustained end to end). Each worker's join
  rebalances the group, a pause that one worker never has: the decisions before
  (``decided_before_stable``, ``group_stable_after_s`` from the start) are not counted;
- ``latency_ms`` at a fixed rate (default 1 000/s, and ``latency_ms_by_rate`` for the
  others asked): decision received by a consumer minus the purchase's ``ingested_at``, over
  ``rate`` x ``--seconds`` purchases a rate. ``latency_clock`` says what their event time is:
  ``live`` (the default), stamped when sent, as a live shop's purchases come: the worker's
  entity wait and expiry see what they see in production; ``simulated`` (the runs before the
  twenty-first session), the simulated month's own times, so a few seconds of sending move
  event time by weeks: expiry sweeps nearly every batch, and the entity replica holds
  records far ahead of a batch, so covering it rarely waits for another partition's next
  record; split in two at the decision's ``decided_at`` (stamped as its batch starts
  deciding): ``worker_latency_ms`` (the decision's own ``latency_ms``: sent to decided) and
  ``after_decided_ms`` (decided to received: the batch's deciding and sending, the worker's
  producer, the broker, the consumer);
  beside it, each rate's ``faust_floor_ms``: the same, at the same rate, for a Faust agent
  that only forwards each purchase to a topic (``faust_latency_floor``): the hops without
  the work, the ceiling a latency is compared with, and that agent's CPU a record by thread
  (``cpu_us_per_record_by_thread``: what Faust and its consumer cost at that rate with no
  work, beside the worker's ``cpu_us_per_purchase_by_thread``);
- each rate's ``cpu_beside``: the CPU the rest of the machine spent meanwhile, this process (the
  load generator and the decision clock) and the embedded servers' processes (none when the
  settings point at servers elsewhere), each as ``cpu_s`` and ``busy`` (cores kept busy): with
  the workers' ``cpu_busy``, whether the machine's cores were full;
- ``peak_rss_mb``: the processes' high-water resident memory (VmHWM);
- ``batch_phases`` (the backlog) and each rate's ``batch_phases``: batches decided and the
  mean wall time per batch of each scoring phase (``sentinel_scoring_phase_seconds``, read
  from the workers' /metrics before and after), ``batch_age_ms``: the mean age of a batch's
  oldest record when the batch started (``sentinel_batch_age_seconds``: what it waited
  before its phases), the purchases decided, and the workers' CPU time (all their threads,
  ``/proc/<pid>/stat``) per purchase and per wall second (``cpu_busy``: 1.0 is one core kept
  busy), and per purchase by thread (``cpu_us_per_purchase_by_thread``: the workers'
  ``sentinel_thread_cpu_seconds_total``: the main thread, ``faust-consumer``, the entity
  replica, ``librdkafka``, ...; the Python threads share one GIL);
- ``faust_cpu_us_per_event`` (the bare agent's CPU per record) and ``cpu_ratio_to_faust``
  (that over the backlog's ``cpu_us_per_purchase``): the throughput ratio's cause, in CPU
  time, which other load on the machine moves less than it moves wall-clock rates;
- ``ratio_to_faust``: ``events_per_s / faust_ceiling_per_s`` (the figure that travels between
  machines; the bare agent on Faust's own aiokafka fetching, whatever the worker's
  ``SENTINEL_FETCHER``), ``fetcher`` (the worker's, and the latency floor's) with
  ``faust_ceiling_same_fetcher_per_s`` and ``ratio_to_faust_same_fetcher`` (the bare agent
  on the worker's fetcher: with librdkafka it is ~2x Faust's own), ``workers`` (``--workers N`` worker processes), ``decide_path_per_s``,
  ``feature_agreement`` and ``verdict_agreement`` (``streams/bench_checks.py``), and the
  machine's load average before and after.

``--worker-cpus 1`` (CPU numbers, comma-separated) runs the Faust processes (the workers, the
memory run's worker, the bare agents of the ceilings and the floor) on those CPUs and moves
this process (the load generator, the decision clock, the decide path) and the embedded
servers' processes onto the others for the run: the worker's latency without the broker and
the load on its cores, as where the broker has machines of its own. The report says so
(``cpu_split``; None without it). On two cores a worker then has one: what it gives at
1 000 /s is the single-core figure.

While it stamps times (the backlog, each rate, the floor's sends) this process runs without its
cyclic garbage collector (``collector_off``): its full passes over what it holds by then (the
load, every decision received) took 150-260 ms, and stamped every decision received meanwhile
that much late (measured with ``gc.callbacks``: one such pass fell inside the 1 000 /s run).

Everything runs under a fresh topic prefix and app id (a scratch token, ``infra/scratch.py``),
deleted at the end, or by the next sweep if the run was killed.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families

from infra import admin, local, scratch, topics
from infra.observe import free_port, ports_off
from infra.process import cpu_seconds, pin, process_tree, thread_cpu_seconds, unpin
from infra.process import stop_group as stop_worker
from infra.settings import KafkaSettings, Settings, get_settings
from schemas.codec import AvroCodec
from schemas.registry import registry_from_settings
from streams.memory_report import status_mb
from streams.metrics import thread_group


def bench_settings(base: Settings, token: str) -> Settings:
    kafka = KafkaSettings(**{**base.kafka.model_dump(), "topic_prefix": f"{token}."})
    stream = base.stream.model_copy(update={"app_id": token})
    return base.model_copy(update={"kafka": kafka, "stream": stream})


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    return {**os.environ, **ports_off(),
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": settings.kafka.topic_prefix,
            "SENTINEL_APP_ID": settings.stream.app_id, "SENTINEL_LOG_LEVEL": "WARNING", **extra}


@dataclass(frozen=True)
class CpuSplit:
    """``--worker-cpus``: the CPUs of the Faust processes, and the others (this process and
    the embedded servers)."""

    workers: frozenset[int]
    others: frozenset[int]

    @classmethod
    def parse(cls, text: str, available: set[int]) -> CpuSplit:
        """``text`` ("1", "2,3") among the ``available`` CPUs, leaving at least one."""
        try:
            workers = frozenset(int(cpu) for cpu in text.split(","))
        except ValueError:
            raise ValueError(f"--worker-cpus {text!r}: CPU numbers separated by commas, "
                             f"e.g. 1") from None
        if missing := sorted(workers - available):
            raise ValueError(f"--worker-cpus {text!r}: CPU {missing} is not one this process "
                             f"may use ({sorted(available)})")
        if not (others := frozenset(available - workers)):
            raise ValueError(f"--worker-cpus {text!r} leaves no CPU for the broker and the "
                             f"load generator")
        return cls(workers, others)

    def report(self) -> dict[str, list[int]]:
        return {"workers": sorted(self.workers), "others": sorted(self.others)}


def embedded_servers(settings: Settings) -> list[int]:
    """The embedded servers' process trees (a broker's, PostgreSQL's backends); none for
    servers the settings point elsewhere: they are not ours."""
    servers = [int(s["pid"]) for s in local.status(settings).values()
               if s.get("state") == "running" and s.get("pid")]
    return process_tree(*servers)


def move_others(settings: Settings, cpus: frozenset[int]) -> dict[int, set[int]]:
    """This process and the embedded servers' process trees onto ``cpus``; what ``unpin``
    restores."""
    return pin([os.getpid(), *embedded_servers(settings)], set(cpus))


def cpu_sample(groups: dict[str, list[int]]) -> dict:
    """The CPU seconds of each group's processes now (``cpu_seconds``), and the time."""
    return {"at": time.monotonic(),
            "groups": {name: {pid: cpu_seconds(pid) for pid in pids}
                       for name, pids in groups.items()}}


def cpu_busy(before: dict, after: dict) -> dict[str, dict[str, float]]:
    """Per group between two ``cpu_sample``s: the CPU seconds its processes spent (those in
    both samples; one gone meanwhile counts as nothing) and ``busy``, that over the wall time
    (1.0: one core kept busy)."""
    wall = max(1e-9, after["at"] - before["at"])
    out = {}
    for name, pids in before["groups"].items():
        now = after["groups"].get(name, {})
        spent = sum(max(0.0, now[pid] - was) for pid, was in pids.items() if pid in now)
        out[name] = {"cpu_s": spent, "busy": spent / wall}
    return out


def spawn(module: str, env: dict[str, str], log: Path,
          cpus: frozenset[int] | None = None) -> subprocess.Popen:
    """``python -m module`` in a session of its own, its stderr into ``log``; on ``cpus``
    when given (its first thread pinned as it starts: the threads it starts inherit it)."""
    with open(log, "wb") as stderr:  # the child keeps its own copy
        proc = subprocess.Popen([sys.executable, "-m", module], env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    if cpus:
        pin([proc.pid], set(cpus))
    return proc


def purchases(n: int, seed: int, users: int | None = None) -> list[dict]:
    """Up to ``n`` simulated purchases (event time order per wallet), with their wallets'
    history: the first of a month of ``users`` users (default ``n // 8``, at least 2 000:
    fewer than ``n`` when they buy less); with ``users=n`` the month holds more than ``n``."""
    from models.simulator import SimConfig, simulate

    out: list[dict] = []
    users = max(2000, n // 8) if users is None else users
    for kind, record in simulate(SimConfig(seed=seed, days=30, n_users=users)):
        if kind == "purchase":
            out.append(record)
            if len(out) >= n:
                break
    return out


def peak_rss_mb(pid: int) -> float:
    return status_mb(pid, ("VmHWM",)).get("VmHWM", 0.0)


def broker_ceiling(settings: Settings, value: bytes, n: int) -> dict:
    name = f"{settings.kafka.topic_prefix}broker-ceiling"
    client = admin.admin_client(settings)
    client.create_topics([NewTopic(name, 6, 1)])[name].result(30)
    producer = Producer(settings.kafka.producer_conf(**{"linger.ms": 5, "batch.size": 1_000_000}))
    started = time.perf_counter()
    for i in range(n):
        while True:
            try:
                producer.produce(name, value, str(i % 5000))
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)
    produced = time.perf_counter() - started
    consumer = Consumer(settings.kafka.consumer_conf(f"{settings.stream.app_id}-ceiling"))
    consumer.subscribe([name])
    got, started = 0, time.perf_counter()
    while got < n:
        got += sum(1 for m in consumer.consume(10_000, 0.5) if m.error() is None)
    consumed = time.perf_counter() - started
    consumer.close()
    return {"records": n, "produce_per_s": n / produced, "consume_per_s": n / consumed,
            "broker_ceiling_per_s": min(n / produced, n / consumed), "topic": name}


def faust_ceiling(settings: Settings, topic: str, n: int, workdir: Path,
                  fetcher: str = "aiokafka", cpus: frozenset[int] | None = None) -> dict:
    """A bare Faust agent iterating ``n`` records of ``topic``: its rate and CPU a record.
    ``fetcher``: who fetches under it (``aiokafka``: Faust's own driver, the ceiling that
    ``ratio_to_faust`` is taken against; ``librdkafka``: faust_compat override 14)."""
    report = workdir / f"iterate-{fetcher}.json"
    log_file = workdir / f"iterate-{fetcher}.log"
    env = env_for(settings, SENTINEL_APP_ID=f"{settings.stream.app_id}-iterate-{fetcher}",
                  SENTINEL_BENCH_TOPIC=topic, SENTINEL_BENCH_COUNT=str(n),
                  SENTINEL_BENCH_REPORT=str(report), SENTINEL_FETCHER=fetcher)
    proc = spawn("streams.bench_iterate", env, log_file, cpus)
    try:
        deadline = time.monotonic() + 300
        while not report.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"iterate-only worker failed; see {log_file}")
            time.sleep(0.2)
        time.sleep(0.1)
        data = json.loads(report.read_text())
        rss = peak_rss_mb(proc.pid)
    finally:
        stop_worker(proc)
    return {"faust_ceiling_per_s": data["count"] / max(1e-9, data["last"] - data["first"]),
            "faust_cpu_us_per_event": 1e6 * data["cpu_s"] / data["count"], "rss_mb": rss}


def faust_latency_floor(settings: Settings, records: list[dict], codec: AvroCodec,
                        rates: list[float], seconds: float, workdir: Path,
                        cpus: frozenset[int] | None = None) -> list[dict]:
    """Per rate, the latency of a Faust agent that only forwards each purchase to an output
    topic (``streams.bench_iterate`` with ``SENTINEL_BENCH_FORWARD_TO``): sent at ``rate`` for
    ``seconds`` as ``latency_at`` sends them, received by a consumer thread; the same hops as
    the pipeline's (producer, broker, Faust's consumer and batching, a producer, broker,
    consumer) without any work. What the pipeline's latency can be compared with."""
    source, sink = (f"{settings.kafka.topic_prefix}latency-floor-{side}" for side in ("in", "out"))
    client = admin.admin_client(settings)
    for future in client.create_topics([NewTopic(name, 6, 1) for name in (source, sink)]).values():
        future.result(30)
    env = env_for(settings, SENTINEL_APP_ID=f"{settings.stream.app_id}-floor",
                  SENTINEL_BENCH_TOPIC=source, SENTINEL_BENCH_FORWARD_TO=sink,
                  SENTINEL_BENCH_COUNT=str(2**62), SENTINEL_BENCH_REPORT=str(workdir / "floor"),
                  SENTINEL_FETCHER=settings.stream.fetcher)  # the hops as the worker's
    proc = spawn("streams.bench_iterate", env, workdir / "floor.log", cpus)
    arrived: dict[int, float] = {}  # sent time (ms, the record's timestamp) -> received
    stop = threading.Event()
    consumer = Consumer(settings.kafka.consumer_conf(f"{settings.stream.app_id}-floor-clock"))
    consumer.subscribe([sink])

    def receive() -> None:  # each record stamped as it is received, as DecisionClock does
        while not stop.is_set():
            first = consumer.poll(0.05)  # (``consume(n, timeout)`` waits for n or the timeout)
            if first is None:
                continue
            for msg in [first, *consumer.consume(5000, 0)]:
                if msg.error() is None and (key := msg.key()) is not None:
                    arrived.setdefault(int(key), time.time())

    thread = threading.Thread(target=receive, name="floor-clock", daemon=True)
    thread.start()
    producer = warm_producer(settings)
    try:
        value = codec.encode(records[0])
        deadline = time.monotonic() + 120
        while not arrived:  # the agent's group formed and its first record back
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"forwarding worker failed; see {workdir / 'floor.log'}")
            producer.produce(source, value, b"-1")
            producer.flush(5)
            time.sleep(0.2)
        out, start = [], 0
        for rate in rates:
            count = int(rate * seconds)
            cpu_before = thread_cpu_seconds(proc.pid)
            with collector_off():
                sent = _send_keyed_by_index(producer, source, value, rate, start, count)
                deadline = time.monotonic() + 120
                while any(i not in arrived for i in sent) and time.monotonic() < deadline:
                    time.sleep(0.05)
            cpu_after = thread_cpu_seconds(proc.pid)
            missing = [i for i in sent if i not in arrived]
            if missing:
                raise RuntimeError(f"forwarding worker lost {len(missing)} records")
            out.append({"rate": rate, "records": count, "latency_ms": percentiles(
                [(arrived[i] - at) * 1000 for i, at in sent.items()]),
                "cpu_us_per_record_by_thread": cpu_by_thread(cpu_before, cpu_after, proc.pid,
                                                             count)})
            start += count
        return out
    finally:
        stop.set()
        thread.join(5)
        consumer.close()
        stop_worker(proc)


def cpu_by_thread(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                  pid: int, records: int) -> dict[str, float]:
    """CPU microseconds a record per thread between two ``thread_cpu_seconds`` of process
    ``pid`` (read from outside: its main thread as ``MainThread``, the others by their kernel
    names, librdkafka's ``rdk:*`` together), largest first, threads that used none left out."""
    spent: dict[str, float] = {}
    for tid, (comm, seconds) in after.items():
        name = "MainThread" if tid == pid else thread_group(None, comm)
        spent[name] = spent.get(name, 0.0) + seconds - before.get(tid, (comm, 0.0))[1]
    return us_per_unit(spent, max(1, records))


def us_per_unit(spent: dict[str, float], units: float) -> dict[str, float]:
    """CPU seconds spent per thread name → microseconds per unit (record, purchase), largest
    first, the threads that spent none left out."""
    used = {name: 1e6 * seconds / units for name, seconds in spent.items() if seconds > 0}
    return dict(sorted(used.items(), key=lambda kv: -kv[1]))


def _send_keyed_by_index(producer: Producer, topic: str, value: bytes, rate: float,
                         first: int, count: int) -> dict[int, float]:
    """``count`` records at ``rate`` per second, keyed by their index from ``first``; the
    wall time each was sent, by index."""
    sent = {}
    for i in paced(count, rate):
        sent[first + i] = time.time()
        producer.produce(topic, value, str(first + i).encode())
        producer.poll(0)
    producer.flush(30)
    return sent


class DecisionClock:
    """Reads the decision topic in its own thread; per purchase id, the wall time the decision
    arrived (and the decision, unless ``keep_decisions`` is false: then ``{}``). The thread
    stamps each decision as it is received: a clock read by the loop that also produces stamped
    late whenever that loop fell behind its schedule (seconds at 1 000/s on a busy machine)."""

    def __init__(self, settings: Settings, keep_decisions: bool = True):
        self.codec = AvroCodec.for_topic(registry_from_settings(settings), topics.DECISIONS)
        conf = settings.kafka.consumer_conf(f"{settings.stream.app_id}-clock")
        self.consumer = Consumer(conf)
        self.consumer.subscribe([topics.full_name(topics.DECISIONS, settings.kafka.topic_prefix)])
        self.arrived: dict[str, tuple[float, dict]] = {}
        self.keep_decisions = keep_decisions
        self._arrival = threading.Condition()  # notified after each batch received
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="decision-clock", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            first = self.consumer.poll(0.05)  # then what else is there: each stamped on receipt
            if first is None:
                continue
            received = [(time.time(), first)]
            received += [(time.time(), msg) for msg in self.consumer.consume(5000, 0)]
            for at, msg in received:
                if msg.error() is None:
                    decision = self.codec.decode(msg.value())
                    kept = decision if self.keep_decisions else {}
                    self.arrived.setdefault(decision["purchase_id"], (at, kept))
            with self._arrival:
                self._arrival.notify_all()

    def wait_arrivals(self, timeout: float) -> None:
        """Until the next decisions arrive, at most ``timeout``."""
        with self._arrival:
            self._arrival.wait(timeout)

    def wait_for(self, ids: set[str], timeout: float, worker) -> None:
        deadline = time.monotonic() + timeout
        with self._arrival:  # checked under the lock: no arrival slips between look and wait
            while not ids <= self.arrived.keys():
                if time.monotonic() > deadline or worker.poll() is not None:
                    missing = len(ids - self.arrived.keys())
                    raise RuntimeError(f"{missing} of {len(ids)} decisions missing")
                self._arrival.wait(0.5)  # woken by arrivals; the workers looked at twice a second

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.consumer.close()


def produce_all(settings: Settings, codec: AvroCodec, records: list[dict]) -> None:
    producer = Producer(settings.kafka.producer_conf())
    name = topics.full_name(topics.PURCHASES, settings.kafka.topic_prefix)
    for record in records:
        producer.produce(name, codec.encode(record), record["wallet"])
        producer.poll(0)
    producer.flush(60)


def warm_producer(settings: Settings) -> Producer:
    """A producer that has its connections, metadata and producer id already (a first send
    otherwise waits for them, which is not the pipeline's latency)."""
    producer = Producer(settings.kafka.producer_conf(**{"linger.ms": 1}))
    producer.produce(f"{settings.kafka.topic_prefix}broker-ceiling", b"warm-up")
    producer.list_topics(timeout=10)
    producer.flush(10)
    return producer


def produce_at_rate(settings: Settings, codec: AvroCodec, records: list[dict],
                    rate: float, live: bool = True) -> None:
    """Send at ``rate`` per second, stamping ``ingested_at`` at send time, and ``occurred_at``
    too when ``live`` (``latency_clock``)."""
    producer = warm_producer(settings)
    name = topics.full_name(topics.PURCHASES, settings.kafka.topic_prefix)
    for i in paced(len(records), rate):
        record = records[i]
        record["ingested_at"] = datetime.now(UTC)
        if live:
            record["occurred_at"] = record["ingested_at"]
        producer.produce(name, codec.encode(record), record["wallet"])
        producer.poll(0)
    producer.flush(30)


@contextmanager
def collector_off() -> Iterator[None]:
    """This process's cyclic garbage collector off for the block, as it was after. Only
    reference cycles wait meanwhile; the rest is freed as always."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def paced(count: int, rate: float) -> Iterator[int]:
    """0 to ``count`` - 1, each when it is due at ``rate`` per second from the first."""
    started = time.perf_counter()
    for i in range(count):
        if (ahead := started + i / rate - time.perf_counter()) > 0:
            time.sleep(ahead)
        yield i


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": ordered[-1]}


def latency_at(settings, codec, clock, worker, records: list[dict], rate: float,
               live: bool = True) -> dict:
    with collector_off():
        produce_at_rate(settings, codec, records, rate, live)
        ids = {r["purchase_id"] for r in records}
        clock.wait_for(ids, 120, worker)
    received = [(clock.arrived[r["purchase_id"]][0] - r["ingested_at"].timestamp()) * 1000
                for r in records]
    worker_side = [clock.arrived[i][1]["latency_ms"] for i in ids]
    after = [(clock.arrived[i][0] - clock.arrived[i][1]["decided_at"].timestamp()) * 1000
             for i in ids]
    return {"rate": rate, "purchases": len(records), "latency_ms": percentiles(received),
            "worker_latency_ms": percentiles(worker_side),
            "after_decided_ms": percentiles(after)}


class Workers:
    """``n`` worker processes; ``poll()`` is not None when any has exited."""

    def __init__(self, settings: Settings, n: int, workdir: Path,
                 cpus: frozenset[int] | None = None):
        # Their /metrics, for ``phase_totals``; the lag monitor behind /readyz measures once
        # at start only, as before the endpoint was on here (the runs stay comparable).
        self.ports = [free_port() for _ in range(n)]
        self.procs = [
            spawn("streams", env_for(settings, METRICS_WORKER_PORT=str(self.ports[i]),
                                     METRICS_LAG_INTERVAL_S="3600"),
                  workdir / f"worker-{i}.log", cpus)
            for i in range(n)
        ]
        self.pid = self.procs[0].pid

    def poll(self):
        return next((p.poll() for p in self.procs if p.poll() is not None), None)

    def wait_group(self, settings: Settings, timeout: float = 300) -> float:
        """Until the workers' consumer group is stable with all of them as members: the
        wall time it was first seen so. Each join rebalances the group (a pause of every
        worker, which one worker never has)."""
        client = admin.admin_client(settings)
        group, deadline = settings.stream.app_id, time.monotonic() + timeout
        while time.monotonic() < deadline and self.poll() is None:
            if admin.stable_members(client, group) == len(self.procs):
                return time.time()
            time.sleep(0.2)  # the broker has no notification for a group's state
        raise RuntimeError(f"group {group} not stable with {len(self.procs)} members; "
                           f"see the worker logs")

    def peak_rss_mb(self) -> float:
        return max(peak_rss_mb(p.pid) for p in self.procs)

    def reading(self) -> dict:
        """What ``split`` compares: the phase totals and purchases decided (the workers'
        /metrics), their CPU seconds and the wall time."""
        pages = []
        for port in self.ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                pages.append(r.read().decode())
        return {"phases": phase_totals(pages), "purchases": decided(pages),
                "threads": thread_totals(pages),
                "cpu_s": sum(cpu_seconds(p.pid) for p in self.procs), "at": time.monotonic()}

    def stop(self) -> None:
        for proc in self.procs:
            stop_worker(proc)


PHASES = ("decode", "entity_wait", "features", "decide", "send")
BATCH_AGE = "batch_age"  # the age of a batch's oldest record when it starts (not a phase)
# The histograms totalled: the phases (by their label), the batch age (under BATCH_AGE)
_TOTALLED = {"sentinel_scoring_phase_seconds": None, "sentinel_batch_age_seconds": BATCH_AGE}


def phase_totals(pages: list[str]) -> dict[str, list[float]]:
    """Per scoring phase, [seconds, batches] summed over the workers' /metrics pages; and
    the same of ``sentinel_batch_age_seconds`` under ``BATCH_AGE``."""
    totals = {phase: [0.0, 0.0] for phase in (*PHASES, BATCH_AGE)}
    for page in pages:
        for family in text_string_to_metric_families(page):
            if family.name not in _TOTALLED:
                continue
            for sample in family.samples:
                column = {"_sum": 0, "_count": 1}.get(sample.name.removeprefix(family.name))
                key = _TOTALLED[family.name] or sample.labels.get("phase")
                if column is not None and key in totals:
                    totals[key][column] += sample.value
    return totals


def decided(pages: list[str]) -> float:
    """Purchases decided, summed over the workers' /metrics pages (``sentinel_batch_size``)."""
    return sum(sample.value for page in pages for family in text_string_to_metric_families(page)
               if family.name == "sentinel_batch_size"
               for sample in family.samples if sample.name == "sentinel_batch_size_sum")


def thread_totals(pages: list[str]) -> dict[str, float]:
    """CPU seconds per thread name (``sentinel_thread_cpu_seconds_total``, ``metrics.ThreadCpu``)
    summed over the workers' /metrics pages."""
    totals: dict[str, float] = {}
    for page in pages:
        for family in text_string_to_metric_families(page):
            if family.name == "sentinel_thread_cpu_seconds":
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        name = sample.labels["thread"]
                        totals[name] = totals.get(name, 0.0) + sample.value
    return totals


def split(before: dict, after: dict) -> dict:
    """Between two ``Workers.reading``: ``phase_split``, the purchases decided, the workers'
    CPU microseconds per purchase, in all and by thread (threads that used some; a thread
    started between the readings counts from 0), and CPU seconds per wall second."""
    purchases = after["purchases"] - before["purchases"]
    cpu_s = after["cpu_s"] - before["cpu_s"]
    was = before.get("threads", {})
    spent = {name: seconds - was.get(name, 0.0)
             for name, seconds in after.get("threads", {}).items()}
    return {**phase_split(before["phases"], after["phases"]), "purchases": purchases,
            "cpu_us_per_purchase": 1e6 * cpu_s / purchases if purchases else None,
            "cpu_us_per_purchase_by_thread": us_per_unit(spent, purchases) if purchases else {},
            "cpu_busy": cpu_s / max(1e-9, after["at"] - before["at"])}


def known_ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, None when either is unknown (a backlog too small for the
    workers to report a purchase between two readings: ``split``'s ``cpu_us_per_purchase``)."""
    return numerator / denominator if numerator is not None and denominator else None


def phase_split(before: dict[str, list[float]], after: dict[str, list[float]]) -> dict:
    """Between two ``phase_totals``: the batches decided, each phase's mean wall ms per
    batch, and ``batch_age_ms``: the mean age of a batch's oldest record when it started
    (what it waited before its phases; None without a batch)."""
    batches = after["decide"][1] - before["decide"][1]
    aged = after[BATCH_AGE][1] - before[BATCH_AGE][1]
    return {"batches": batches,
            "mean_ms": {phase: 1000 * (after[phase][0] - before[phase][0]) / batches
                        if batches else None for phase in PHASES},
            "batch_age_ms": 1000 * (after[BATCH_AGE][0] - before[BATCH_AGE][0]) / aged
            if aged else None}  # fmt: skip


def run(settings: Settings, n: int, rates: list[float], seconds: float, workdir: Path,
        workers: int = 1, latency_clock: str = "live", cpus: frozenset[int] | None = None) -> dict:
    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    load = purchases(n, seed=11)
    broker = broker_ceiling(settings, codec.encode(load[0]), max(n * 4, 100_000))
    faust = faust_ceiling(settings, broker["topic"], broker["records"], workdir, cpus=cpus)
    fetcher = settings.stream.fetcher
    same = faust if fetcher == "aiokafka" else faust_ceiling(
        settings, broker["topic"], broker["records"], workdir, fetcher, cpus)
    floor = faust_latency_floor(settings, load, codec, rates, seconds, workdir, cpus)
    produce_all(settings, codec, load)
    clock = DecisionClock(settings)
    started = time.time()
    worker = Workers(settings, workers, workdir, cpus)
    try:
        stable = worker.wait_group(settings)
        reading = worker.reading()
        ids = {r["purchase_id"] for r in load}
        with collector_off():
            clock.wait_for(ids, 600, worker)
        after = worker.reading()
        backlog_phases, reading = split(reading, after), after
        burst = {i: clock.arrived[i][1] for i in ids}
        times = sorted(clock.arrived[i][0] for i in ids)
        window = [t for t in times if t >= stable]
        if len(window) < 2:
            raise RuntimeError("the backlog was decided before the group was stable: "
                               "more --purchases")
        sustained = (len(window) - 1) / max(1e-9, window[-1] - window[0])
        wanted = sum(int(rate * seconds) for rate in rates)
        fresh = purchases(wanted, seed=29, users=wanted)
        by_rate, start = [], 0
        beside = {"bench": [os.getpid()], "servers": embedded_servers(settings)}
        for rate in rates:
            count = int(rate * seconds)
            cpu_before = cpu_sample(beside)
            by_rate.append(latency_at(settings, codec, clock, worker,
                                      fresh[start:start + count], rate,
                                      latency_clock == "live"))
            by_rate[-1]["cpu_beside"] = cpu_busy(cpu_before, cpu_sample(beside))
            by_rate[-1]["faust_floor_ms"] = floor[len(by_rate) - 1]["latency_ms"]
            by_rate[-1]["faust_floor_cpu_us_per_record_by_thread"] = \
                floor[len(by_rate) - 1]["cpu_us_per_record_by_thread"]
            after = worker.reading()
            by_rate[-1]["batch_phases"], reading = split(reading, after), after
            start += count
        rss = worker.peak_rss_mb()
    finally:
        worker.stop()
        clock.close()
    return {
        "events_per_s": sustained,
        "ratio_to_faust": sustained / faust["faust_ceiling_per_s"],
        "workers": workers,
        "fetcher": fetcher,
        "faust_ceiling_same_fetcher_per_s": same["faust_ceiling_per_s"],
        "ratio_to_faust_same_fetcher": sustained / same["faust_ceiling_per_s"],
        "group_stable_after_s": stable - started,
        "decided_before_stable": len(times) - len(window),
        **_checks().agreement(load, burst),
        "broker_ceiling_per_s": broker["broker_ceiling_per_s"],
        "faust_ceiling_per_s": faust["faust_ceiling_per_s"],
        "faust_cpu_us_per_event": faust["faust_cpu_us_per_event"],
        "cpu_ratio_to_faust": known_ratio(faust["faust_cpu_us_per_event"],
                                     backlog_phases["cpu_us_per_purchase"]),
        "batch_phases": backlog_phases,
        "at_rate": rates[0],
        "latency_ms": by_rate[0]["latency_ms"],
        "latency_clock": latency_clock,
        "latency_ms_by_rate": by_rate,
        "peak_rss_mb": {"worker": rss, "iterate_only_worker": faust["rss_mb"]},
        "broker": {k: v for k, v in broker.items() if k != "topic"},
        "purchases_end_to_end": len(load),
    }


def rss_mb(pid: int) -> float:
    return status_mb(pid, ("VmRSS",)).get("VmRSS", 0.0)


def memory_run(settings: Settings, n: int, workdir: Path,
               cpus: frozenset[int] | None = None) -> dict:
    """``n`` purchases spanning 30 simulated days through one worker: resident memory when
    half of them and when all of them are decided (windows expire by event time)."""
    from models.simulator import SimConfig, simulate

    codec = AvroCodec.for_topic(registry_from_settings(settings), topics.PURCHASES)
    producer = Producer(settings.kafka.producer_conf(**{"linger.ms": 20}))
    name = topics.full_name(topics.PURCHASES, settings.kafka.topic_prefix)
    sent = 0
    # ~0.08 purchases per user and day: enough users that n purchases span the 30 days.
    for kind, record in simulate(SimConfig(seed=41, days=30, n_users=max(2000, int(n / 2.2)))):
        if kind == "purchase":
            while True:
                try:
                    producer.produce(name, codec.encode(record), record["wallet"])
                    break
                except BufferError:
                    producer.poll(0.05)
            sent += 1
            if sent >= n:
                break
    producer.flush(120)
    clock = DecisionClock(settings, keep_decisions=False)
    report = workdir / "memory-breakdown.json"
    worker = spawn("streams", env_for(settings, SENTINEL_MEMORY_REPORT=str(report)),
                   workdir / "memory-worker.log", cpus)
    samples: dict[str, float] = {}
    loads: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 3600
        while len(clock.arrived) < sent and time.monotonic() < deadline:
            clock.wait_arrivals(0.5)
            if "half" not in samples and len(clock.arrived) >= sent // 2:
                samples["half"], loads["half"] = rss_mb(worker.pid), os.getloadavg()[0]
                ask_breakdown(report, "half")
            if worker.poll() is not None:
                raise RuntimeError("worker exited; see memory-worker.log")
        samples["end"], loads["end"] = rss_mb(worker.pid), os.getloadavg()[0]
        peak = peak_rss_mb(worker.pid)
        ask_breakdown(report, "end")
    finally:
        stop_worker(worker)
        clock.close()
    return {"purchases": sent, "decided": len(clock.arrived), "simulated_days": 30,
            "rss_mb_at_half": samples.get("half"), "rss_mb_at_end": samples["end"],
            "growth_pct": 100 * (samples["end"] / samples["half"] - 1) if "half" in samples
            else None, "peak_rss_mb": peak, "loadavg_1m": loads,
            "breakdown": json.loads(report.read_text()) if report.exists() else None}


def ask_breakdown(report: Path, label: str, timeout_s: float = 120) -> None:
    """Ask the worker for its memory breakdown (``streams/memory_report.py``) and wait."""
    want = report.with_name(report.name + ".want")
    want.write_text(label)
    deadline = time.monotonic() + timeout_s
    while want.exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def bench_pipeline(args) -> int:
    base = get_settings()
    try:
        split = (CpuSplit.parse(args.worker_cpus, os.sched_getaffinity(0))
                 if args.worker_cpus else None)
    except ValueError as exc:
        sys.exit(f"sentinel bench pipeline: {exc}")
    local.start_all(base)
    moved = move_others(base, split.others) if split else {}
    try:
        report = _pipeline_report(args, base, split)
    finally:
        unpin(moved)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in (
        "decide_path_per_s", "events_per_s", "ratio_to_faust", "cpu_ratio_to_faust", "workers",
        "faust_ceiling_per_s", "faust_cpu_us_per_event", "fetcher",
        "faust_ceiling_same_fetcher_per_s", "ratio_to_faust_same_fetcher", "broker_ceiling_per_s",
        "feature_agreement", "verdict_agreement", "latency_ms", "latency_clock", "cpu_split",
        "machine")}, indent=2))
    return 0


def _pipeline_report(args, base: Settings, split: CpuSplit | None) -> dict:
    load_before = os.getloadavg()
    cpus = split.workers if split else None
    with scratch.scratch_run(base, "bench") as token:
        settings = bench_settings(base, token)
        admin.create_topics(settings)
        workdir = base.stream.data_dir / "bench" / settings.stream.app_id
        workdir.mkdir(parents=True, exist_ok=True)
        report = _checks().decide_path()
        report.update(run(settings, args.purchases, args.rates, args.seconds, workdir,
                          args.workers, args.latency_clock, cpus))
        if args.memory_purchases:
            with scratch.scratch_run(base, "bench") as memory_token:
                memory = bench_settings(base, memory_token)
                admin.create_topics(memory)
                report["memory"] = memory_run(memory, args.memory_purchases, workdir, cpus)
    report.update({"cpu_split": split.report() if split else None,
                   "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before,
                               "loadavg_after": os.getloadavg()},
                   "command": " ".join(sys.argv),
                   "created_at": datetime.now(UTC).isoformat()})
    return report


def _checks():
    """``streams.bench_checks``, imported when a bench runs: it loads XGBoost (and with it
    scikit-learn), two seconds that every ``sentinel`` command would pay at start-up."""
    from streams import bench_checks

    return bench_checks


def add_bench_commands(bench_sub) -> None:
    p = bench_sub.add_parser("pipeline", help="end-to-end throughput, latency, memory → JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--purchases", type=int, default=30_000, help="pre-loaded, full speed")
    p.add_argument("--rates", type=float, nargs="+", default=[1000.0, 3000.0])
    p.add_argument("--seconds", type=float, default=10.0, help="per fixed rate")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--latency-clock", choices=("live", "simulated"), default="live",
                   help="the fixed rates' event time: stamped when sent (live), or the "
                        "simulated month's own (the runs before the twenty-first session)")
    p.add_argument("--memory-purchases", type=int, default=0,
                   help="also run this many purchases over 30 simulated days for memory")
    p.add_argument("--worker-cpus", metavar="CPUS",
                   help="run the Faust processes on these CPUs (e.g. 1) and this process and "
                        "the embedded servers on the others, for the run")
    p.set_defaults(func=bench_pipeline)
