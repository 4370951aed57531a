"""Who is asking (a console user through a session or an API key) and what their role sees.

Roles are ordered: ``viewer`` reads (with IP addresses masked), ``analyst`` also works review
cases, alerts and blocklists, ``admin`` also manages users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from infra.logsafe import scrub

Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    via: Literal["session", "key"]
    csrf_token: str | None = None  # sessions only: API-key requests carry no cookies

    def can(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def masks_ips(self) -> bool:
        return self.role == "viewer"

    @property
    def client_id(self) -> str:
        """What per-client limits count on."""
        return f"{self.via}:{self.name}"


def mask_ips(value: Any) -> Any:
    """``value`` with every IP address inside its strings (at any depth) replaced by its
    network (/24 or /48) and every email by its domain, as logs show them (infra/logsafe)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: mask_ips(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_ips(v) for v in value]
    return value


def for_principal(principal: Principal, value: Any) -> Any:
    return mask_ips(value) if principal.masks_ips else value
