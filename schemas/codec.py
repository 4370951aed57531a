"""Avro values in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro
binary (fastavro). One ``AvroCodec`` per subject, built once.

Every way a value can fail to decode (wrong magic byte, unknown schema id, truncated or
malformed body) raises ``DecodeError``, which the pipeline routes to the dead-letter topic.
"""

from __future__ import annotations

import io
import struct

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.types import Schema
from fastavro.validation import ValidationError, validate

from schemas.registry import Registry, load_schema

MAGIC = 0
HEADER = struct.Struct(">bI")


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

    @classmethod
    def for_topic(cls, registry: Registry, spec) -> AvroCodec:
        """``spec`` is an ``infra.topics.TopicSpec``."""
        return cls(registry, spec.subject, load_schema(spec.schema))

    def encode(self, record: dict, *, check: bool = False) -> bytes:
        if check:
            self.validate(record)
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

    def _writer(self, schema_id: int) -> Schema:
        if schema_id not in self._writers:
            schema = self.registry.schema_by_id(schema_id)
            if schema is None:
                raise DecodeError(f"{self.subject}: unknown schema id {schema_id}")
            self._writers[schema_id] = parse_schema(schema)
        return self._writers[schema_id]
