"""Avro codec, registries and schema evolution."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

from infra import topics
from infra.settings import REPO_ROOT
from schemas.codec import AvroCodec, DecodeError, EncodeError
from schemas.registry import SCHEMA_DIR, FileRegistry, load_schema
from tests.support.records import purchase

pytestmark = pytest.mark.unit
SCHEMA_FILES = sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc"))


@pytest.fixture
def codec(tmp_path):
    return AvroCodec.for_topic(FileRegistry(tmp_path / "r.json"), topics.PURCHASES)


def test_roundtrip_uses_confluent_framing(codec):
    data = codec.encode(purchase(1))
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == codec.schema_id
    assert codec.decode(data) == {**_defaults(), **purchase(1)}


def _defaults() -> dict:
    return {f["name"]: f["default"] for f in load_schema("purchase")["fields"] if "default" in f}


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b"\x01" + b[1:], "wrong magic byte 0x01"),
        (lambda b: b[:5] + b"", "malformed Avro body"),
        (lambda b: b[:3], "truncated value (3 bytes)"),
        (lambda b: b"", "truncated value (0 bytes)"),
        (lambda b: b"\x00\x00\x00\x30\x39" + b[5:], "unknown schema id 12345"),
        (lambda b: b + b"\x00\x01", "2 trailing bytes"),
        (lambda b: b[: len(b) // 2], "malformed Avro body"),
    ],
)
def test_every_bad_value_raises_decode_error(codec, mangle, message):
    with pytest.raises(DecodeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        codec.decode(mangle(codec.encode(purchase(1))))


def test_decode_of_none_is_a_decode_error(codec):
    with pytest.raises(DecodeError):
        codec.decode(None)


def test_validate_names_the_bad_field(codec):
    with pytest.raises(EncodeError, match="quantity"):
        codec.encode(purchase(1, quantity="three"), check=True)


def test_file_registry_gives_the_same_ids_in_every_process(tmp_path):
    path = tmp_path / "r.json"
    script = (
        "import sys; from pathlib import Path; from infra import topics;"
        "from schemas.codec import AvroCodec; from schemas.registry import FileRegistry;"
        f"r = FileRegistry(Path({str(path)!r}));"
        "print(*[AvroCodec.for_topic(r, t).schema_id for t in topics.ALL if t.schema])"
    )
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT)
        for _ in range(2)
    ]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    ids = runs[0].stdout.split()
    assert len(ids) == len([t for t in topics.ALL if t.schema])


def test_committed_registry_matches_the_schema_files():
    """schemas/registry.json holds every current schema: ids are stable across machines."""
    registry = FileRegistry(SCHEMA_DIR / "registry.json")
    before = (SCHEMA_DIR / "registry.json").read_text()
    for spec in topics.ALL:
        if spec.schema:
            AvroCodec.for_topic(registry, spec)
    assert (SCHEMA_DIR / "registry.json").read_text() == before, "run the codec once and commit"


def _previous_versions(stem: str) -> list[dict]:
    """Every committed version of schemas/<stem>.avsc (git history), oldest first."""
    path = f"schemas/{stem}.avsc"
    log = subprocess.run(
        ["git", "log", "--format=%H", "--", path], capture_output=True, text=True, cwd=REPO_ROOT
    )
    versions = []
    for commit in reversed(log.stdout.split()):
        shown = subprocess.run(
            ["git", "show", f"{commit}:{path}"], capture_output=True, text=True, cwd=REPO_ROOT
        )
        if shown.returncode == 0:
            versions.append(json.loads(shown.stdout))
    return versions


@pytest.mark.parametrize("stem", SCHEMA_FILES)
def test_schema_is_backward_compatible_with_every_committed_version(stem):
    """Records written with any earlier version read with the current schema (BACKWARD)."""
    reader = parse_schema(load_schema(stem))
    registry = json.loads((SCHEMA_DIR / "registry.json").read_text())
    olds = _previous_versions(stem) + [
        json.loads(v["schema"])
        for subject, versions in registry["subjects"].items()
        for v in versions
        if json.loads(v["schema"]).get("name") == load_schema(stem)["name"]
    ]
    assert olds, f"{stem}: no committed version found"
    for old in olds:
        writer = parse_schema(old)
        for record in generate_many(writer, 20):
            import io

            buf = io.BytesIO()
            schemaless_writer(buf, writer, record)
            buf.seek(0)
            schemaless_reader(buf, writer, reader)


def test_decode_reads_an_older_writer_schema(tmp_path):
    """A value written with an older version (fewer fields) decodes with today's defaults."""
    registry = FileRegistry(tmp_path / "r.json")
    old = load_schema("label")
    old["fields"] = [f for f in old["fields"] if f["name"] != "pattern"]
    old_codec = AvroCodec(registry, topics.LABELS.subject, old)
    new_codec = AvroCodec.for_topic(registry, topics.LABELS)
    assert new_codec.schema_id != old_codec.schema_id
    record = {"purchase_id": "p", "occurred_at": purchase(0)["occurred_at"], "is_fraud": True,
              "source": "CHARGEBACK"}
    assert new_codec.decode(old_codec.encode(record)) == {**record, "pattern": None, "reviewer": None}
