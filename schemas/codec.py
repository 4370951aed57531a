"""Avro values in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro
binary. One ``AvroCodec`` per subject, built once.

Two libraries, one format. The values the pipeline writes and reads by the thousand (a
purchase decoded, a decision encoded) go through ``schemas/native`` (``serde_avro_fast``,
Rust): ~11 µs to decode a purchase and ~10 µs to encode a decision with its 70 features,
against ~28 and ~49 µs with fastavro (``sentinel bench codec``). fastavro stays for the
rest: validation at the edge (its errors name the field), values written with another
version of the schema (resolution against the reader's), and every value the fast path does
not take (a naive datetime, a field left to its default, an unknown type): it then gives the
bytes or the error.
Both give the same bytes and the same values (``tests/unit/test_schemas_native.py``); on
mangled bytes the fast path is stricter only where the Avro specification is (a boolean byte
other than 0 or 1, a negative union index): those become dead letters.

Every way a value can fail to decode (wrong magic byte, unknown schema id, truncated or
malformed body) raises ``DecodeError``, which the pipeline routes to the dead-letter topic.
"""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, datetime, timedelta

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.types import Schema
from fastavro.validation import ValidationError, validate

from schemas._avro import Codec as NativeCodec
from schemas.registry import Registry, load_schema

MAGIC = 0
HEADER = struct.Struct(">bI")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class DecodeError(ValueError):
    """A value that is not a readable Avro record of this subject."""


class EncodeError(ValueError):
    """A record that does not match its schema; the message names the field."""


class AvroCodec:
    def __init__(self, registry: Registry, subject: str, schema: dict):
        self.registry = registry
        self.subject = subject
        self.schema = parse_schema(schema)
        self.schema_id = registry.register(subject, schema)
        self._header = HEADER.pack(MAGIC, self.schema_id)
        self._writers: dict[int, Schema] = {self.schema_id: self.schema}
        self._native = NativeCodec(json.dumps(schema), datetime, EPOCH)
        self._timestamps = timestamp_fields(schema)

    @classmethod
    def for_topic(cls, registry: Registry, spec) -> AvroCodec:
        """``spec`` is an ``infra.topics.TopicSpec``."""
        return cls(registry, spec.subject, load_schema(spec.schema))

    def encode(self, record: dict, *, check: bool = False) -> bytes:
        if check:
            self.validate(record)
        try:
            return self._native.encode(self._header, record)
        except ValueError:
            pass  # not for the fast path: fastavro writes it, or says which field is wrong
        out = io.BytesIO()
        out.write(self._header)
        try:
            schemaless_writer(out, self.schema, record)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise EncodeError(f"{self.subject}: {exc}") from exc
        return out.getvalue()

    def validate(self, record: dict) -> None:
        try:
            validate(record, self.schema, raise_errors=True)
        except ValidationError as exc:
            raise EncodeError(f"{self.subject}: invalid {'; '.join(map(str, exc.errors))}") from exc

    def decode(self, data: bytes | None) -> dict:
        if data is None or len(data) < HEADER.size:
            raise DecodeError(f"{self.subject}: truncated value ({len(data or b'')} bytes)")
        magic, schema_id = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError(f"{self.subject}: wrong magic byte {magic:#04x}")
        if schema_id == self.schema_id and self._timestamps is not None:
            return self._decode_native(data)
        writer = self._writer(schema_id)
        body = io.BytesIO(data)
        body.seek(HEADER.size)
        try:
            record = schemaless_reader(body, writer, self.schema)
        except Exception as exc:  # fastavro raises many types on bad bytes
            raise DecodeError(f"{self.subject}: malformed Avro body: {exc!r}") from exc
        if body.tell() != len(data):
            raise DecodeError(f"{self.subject}: {len(data) - body.tell()} trailing bytes")
        if not isinstance(record, dict):  # a writer schema that is not a record
            raise DecodeError(f"{self.subject}: schema {schema_id} is not a record schema")
        return record

    def _decode_native(self, data: bytes) -> dict:
        """A value written with this codec's own schema (one with ``_timestamps`` known)."""
        assert self._timestamps is not None
        try:
            record, left = self._native.decode(data, HEADER.size)
        except ValueError as exc:
            raise DecodeError(f"{self.subject}: malformed Avro body: {exc}") from exc
        if left:
            raise DecodeError(f"{self.subject}: {left} trailing bytes")
        if not isinstance(record, dict):
            raise DecodeError(f"{self.subject}: schema {self.schema_id} is not a record schema")
        try:
            # as fastavro gives them: aware datetimes (UTC); milliseconds passed by position,
            # timedelta(0, 0, 0, ms), as keyword parsing cost ~0.4 us a field (measured)
            for name in self._timestamps:
                if (ms := record[name]) is not None:
                    record[name] = EPOCH + timedelta(0, 0, 0, ms)
        except OverflowError as exc:  # past year 9999, as fastavro would fail on it
            raise DecodeError(f"{self.subject}: malformed Avro body: {name} {exc}") from exc
        return record

    def _writer(self, schema_id: int) -> Schema:
        if schema_id not in self._writers:
            schema = self.registry.schema_by_id(schema_id)
            if schema is None:
                raise DecodeError(f"{self.subject}: unknown schema id {schema_id}")
            self._writers[schema_id] = parse_schema(schema)
        return self._writers[schema_id]


def timestamp_fields(schema: dict) -> tuple[str, ...] | None:
    """The record's fields that hold a timestamp-millis (alone or in a union with null).
    None when a logical type lies deeper (in a nested record, an array, a map): the fast
    path would decode it as an int, so such a schema is decoded by fastavro."""
    def timestamp(t) -> bool:
        return isinstance(t, dict) and t.get("logicalType") == "timestamp-millis"

    def holds_logical(t) -> bool:
        if isinstance(t, dict):
            return "logicalType" in t or any(holds_logical(v) for v in t.values())
        return isinstance(t, list) and any(holds_logical(v) for v in t)

    out = []
    for field in schema["fields"]:
        t = field["type"]
        branches = t if isinstance(t, list) else [t]
        if any(timestamp(b) for b in branches):
            out.append(field["name"])
        elif holds_logical(t):
            return None
    return tuple(out)
