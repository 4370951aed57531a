"""Records of the rules topic (``infra.topics.RULES``, compacted, one partition).

- key ``ruleset``: the active rules file, ``{"version", "sha256", "body" (TOML text),
  "action" (deploy | rollback), "at"}``. Compaction keeps the latest: a worker that starts
  reads it and decides with the deployed rules, not the packaged file.
- key ``rule:<id>``: one rule's switch, ``{"rule", "shadowed", "reason", "at"}``, written by
  the blast-radius breaker (shadowed) and ``sentinel rules enable`` (enforced again).

Values are JSON (orjson); ``publish`` sends one through the agents' producer helper and waits
for the broker's acknowledgement.
"""

from __future__ import annotations

import hashlib
import tomllib
from datetime import UTC, datetime

import orjson

from infra import topics
from infra.settings import Settings
from processors.rules import RuleSet, RulesFileError, ruleset_from_dict

RULESET_KEY = "ruleset"
RULE_PREFIX = "rule:"


def sha256(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def parse_ruleset(body: str, source: str = "<deployed>") -> RuleSet:
    """A rules file's text → a validated RuleSet (``RulesFileError`` naming what is wrong)."""
    try:
        doc = tomllib.loads(body)
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileError(f"{source}: invalid TOML: {exc}") from exc
    return ruleset_from_dict(doc, source=source)


def ruleset_value(version: str, body: str, action: str) -> bytes:
    return orjson.dumps({"version": version, "sha256": sha256(body), "body": body,
                         "action": action, "at": datetime.now(UTC).isoformat()})


def switch_value(rule_id: str, shadowed: bool, reason: str) -> bytes:
    return orjson.dumps({"rule": rule_id, "shadowed": shadowed, "reason": reason,
                         "at": datetime.now(UTC).isoformat()})


def rule_key(rule_id: str) -> str:
    return f"{RULE_PREFIX}{rule_id}"


def publish(settings: Settings, key: str, value: bytes) -> None:
    """One record to the rules topic, acknowledged (``OutputError`` if not)."""
    from streams.outputs import Outputs

    outputs = Outputs(settings, component="sentinel-rules")
    outputs.send(topics.RULES, key, value)
    outputs.flush(30)
