"""Settings of the sinks (``SINK_*``) and of the SIEM correlator (``SIEM_*``), read once at
start-up like every other concern (infra/settings.py)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

RULES_FILE = Path(__file__).resolve().parent / "siem" / "rules.toml"
DAY_S = 24 * 3600


class SinkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SINK_", frozen=True, extra="ignore")

    batch_size: int = 500
    poll_timeout_s: float = 0.05
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0
    # An owned partition with records waiting that has not moved for this long outside a
    # backoff is restarted (sinks/stalls.py); librdkafka's statistics every third of it.
    stall_s: float = 30.0
    decision_ttl_s: int = 7 * DAY_S
    kpi_ttl_s: int = 2 * DAY_S


class SiemSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIEM_", frozen=True, extra="ignore")

    rules_file: Path = RULES_FILE
    webhook_url: str | None = None  # alerts are POSTed here as JSON when set
    webhook_timeout_s: float = 2.0
    # Repeat offenders (sinks/siem/escalation.py): the n-th block of a target within the
    # memory lasts ttl x factor^(n-1), at most max_response_ttl_s; never permanent.
    repeat_factor: float = 2.0
    max_response_ttl_s: int = 7 * DAY_S
    offence_memory_s: int = 30 * DAY_S

    def repeat_policy(self):
        from sinks.siem.escalation import RepeatPolicy

        return RepeatPolicy(self.repeat_factor, self.max_response_ttl_s * 1000,
                            self.offence_memory_s * 1000)  # fmt: skip
