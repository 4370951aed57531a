"""Schema ids for the Confluent wire format.

With ``SCHEMA_REGISTRY_URL`` set, ids come from a real Confluent-compatible Schema Registry
(confluent-kafka's client). Without it, from ``FileRegistry``: a JSON file, committed with the
code, that gives the same id for the same schema in every process; a new schema version gets
the next id under a file lock.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Protocol

from fastavro.schema import to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).resolve().parent


def load_schema(stem: str) -> dict:
    """The Avro schema ``schemas/<stem>.avsc`` as a dict."""
    return json.loads((SCHEMA_DIR / f"{stem}.avsc").read_text())


def canonical(schema: dict | str) -> str:
    """Avro's Parsing Canonical Form: what makes two schemas the same schema (no docs,
    defaults or logical types, so not what is stored)."""
    return to_parsing_canonical_form(json.loads(schema) if isinstance(schema, str) else schema)


def _stored(schema: dict) -> str:
    """What the registry keeps: the full schema (logical types, defaults), keys sorted."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


class Registry(Protocol):
    def register(self, subject: str, schema: dict) -> int: ...

    def schema_by_id(self, schema_id: int) -> dict | None: ...


class FileRegistry:
    """Subjects and ids in one JSON file; safe across processes (flock)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._by_id: dict[int, dict] = {}

    def _read(self) -> dict:
        if not self.path.exists():
            return {"next_id": 1, "subjects": {}}
        return json.loads(self.path.read_text())

    def register(self, subject: str, schema: dict) -> int:
        text = canonical(schema)
        state = self._read()
        for version in state["subjects"].get(subject, []):
            if canonical(version["schema"]) == text:
                return version["id"]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read()
            versions = state["subjects"].setdefault(subject, [])
            for version in versions:
                if canonical(version["schema"]) == text:
                    return version["id"]
            # The same schema under another subject keeps its id, as in Confluent's registry.
            schema_id = self._id_of(state, text) or state["next_id"]
            state["next_id"] = max(state["next_id"], schema_id + 1)
            stored = {"version": len(versions) + 1, "id": schema_id, "schema": _stored(schema)}
            versions.append(stored)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
            tmp.replace(self.path)
            return schema_id

    @staticmethod
    def _id_of(state: dict, text: str) -> int | None:
        for versions in state["subjects"].values():
            for version in versions:
                if canonical(version["schema"]) == text:
                    return version["id"]
        return None

    def schema_by_id(self, schema_id: int) -> dict | None:
        if schema_id not in self._by_id:
            for versions in self._read()["subjects"].values():
                for version in versions:
                    self._by_id[version["id"]] = json.loads(version["schema"])
        return self._by_id.get(schema_id)

    def versions(self, subject: str) -> list[dict]:
        return [json.loads(v["schema"]) for v in self._read()["subjects"].get(subject, [])]


class HttpRegistry:
    """A Confluent-compatible Schema Registry through confluent-kafka's client."""

    def __init__(self, url: str):
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self._client = SchemaRegistryClient({"url": url})

    def register(self, subject: str, schema: dict) -> int:
        from confluent_kafka.schema_registry import Schema

        return self._client.register_schema(subject, Schema(json.dumps(schema), "AVRO"))

    def schema_by_id(self, schema_id: int) -> dict | None:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            text = self._client.get_schema(schema_id).schema_str
        except SchemaRegistryError:
            return None
        return None if text is None else json.loads(text)


def registry_from_settings(settings) -> Registry:
    """``settings`` is ``infra.settings.Settings``."""
    if settings.schema_registry.url:
        return HttpRegistry(settings.schema_registry.url)
    return FileRegistry(settings.schema_registry.file)
