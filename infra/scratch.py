"""Scratch names on a shared broker: the topics and consumer groups a test session or a
benchmark creates for itself. The run deletes them when it ends; a later run sweeps them
when the run was killed before it could (SIGKILL, a lost terminal).

``claim(settings, stem)`` gives a run a token (``stem`` + 8 hex digits) and holds an
exclusive lock on ``<tmp>/sentinel-scratch/<broker>/<token>.lock`` while the process lives.
Everything the run creates is named after its token: topic prefixes ``<token>…`` and Faust
app ids ``<token>…`` or ``sentinel-<token>…``, whose internal topics
(``<app id>-<table>-changelog``, ``<app id>-__assignor-__leader``) and consumer groups
follow. ``sweep(settings)`` deletes what belongs to every token whose lock file is there
but free (its owner is gone). A token without a lock file is not ours to judge (another
checkout, an older run): it is left alone.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException

from infra import admin
from infra.settings import Settings

log = logging.getLogger(__name__)

APP_STEM = "sentinel-"  # a test's Faust app id is "sentinel-<its topic prefix>"


@dataclass
class Claim:
    token: str
    lock_file: Path
    fd: int

    def release(self) -> None:
        """Give the token up for good: call it once everything it named is deleted."""
        self.lock_file.unlink(missing_ok=True)
        os.close(self.fd)


def lock_dir(settings: Settings) -> Path:
    """One folder of lock files per broker: a sweep only judges the runs on its broker."""
    broker = re.sub(r"[^A-Za-z0-9.-]+", "_", settings.kafka.bootstrap_servers)
    return Path(tempfile.gettempdir()) / "sentinel-scratch" / broker


def claim(settings: Settings, stem: str) -> Claim:
    """A fresh token whose lock this process holds; the lock file appears already locked (it
    is locked under a temporary name, then renamed), so no sweep can take a live run's."""
    folder = lock_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        token = f"{stem}{uuid.uuid4().hex[:8]}"
        path = folder / f"{token}.lock"
        if path.exists():
            continue
        draft = folder / f".{token}.{os.getpid()}"
        fd = os.open(draft, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.rename(draft, path)
        return Claim(token, path, fd)


def owned(names: Iterable[str], token: str) -> list[str]:
    """The names (topics or groups) that belong to ``token``'s run."""
    return sorted(n for n in names if n.startswith(token) or n.startswith(APP_STEM + token))


def leftovers(settings: Settings, token: str, timeout: float = 30.0) -> list[str]:
    """The topics of ``token``'s run still on the broker."""
    return owned(admin.admin_client(settings).list_topics(timeout=timeout).topics, token)


def delete_owned(settings: Settings, token: str, timeout: float = 30.0) -> list[str]:
    """Delete the topics and (empty) consumer groups of ``token``'s run; return the topics
    deleted. A group still in use is left: groups hold no files on the broker."""
    deleted = admin.delete_topics(settings, leftovers(settings, token, timeout), timeout)
    client = admin.admin_client(settings)
    try:
        listed = client.list_consumer_groups(request_timeout=timeout).result()
        groups = owned((g.group_id for g in listed.valid), token)
        for future in client.delete_consumer_groups(groups, request_timeout=timeout).values() \
                if groups else ():
            try:
                future.result()
            except KafkaException as exc:
                log.info("scratch group not deleted: %s", exc)
    except KafkaException as exc:
        log.warning("scratch groups of %s not listed: %s", token, exc)
    return deleted


@contextmanager
def scratch_run(settings: Settings, stem: str) -> Iterator[str]:
    """A token for a benchmark's run; its topics and groups are deleted when the block ends
    (however it ends: see ``infra.process.interrupt_on_term`` for SIGTERM). What could not
    be deleted is logged and left to the next sweep."""
    run = claim(settings, stem)
    try:
        yield run.token
    finally:
        try:
            delete_owned(settings, run.token)
            left = leftovers(settings, run.token)
        except (KafkaException, TimeoutError) as exc:
            left = [f"(not deleted: {exc})"]
        if left:
            log.warning("scratch topics left for the next sweep: %s", left)
            os.close(run.fd)  # the lock file stays; free once we are gone
        else:
            run.release()


def sweep(settings: Settings) -> dict[str, list[str]]:
    """Delete what belongs to runs that are gone; return {token: topics deleted}."""
    swept: dict[str, list[str]] = {}
    folder = lock_dir(settings)
    for path in sorted(folder.glob("*.lock")) if folder.is_dir() else ():
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue  # released meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # its run is alive
        token = path.name.removesuffix(".lock")
        try:
            swept[token] = delete_owned(settings, token)
            if not leftovers(settings, token):
                path.unlink(missing_ok=True)
        except (KafkaException, TimeoutError) as exc:  # the next sweep tries again
            log.warning("sweeping %s failed: %s", token, exc)
        finally:
            os.close(fd)
    return swept
