"""What a log line may say about a person: never a raw IP, email or user id.

- ``redact_ip``: an IP's network (/24 for IPv4, /48 for IPv6), never the address;
- ``pseudonym``: a keyed hash of an identifier (a user id, a wallet, a group key), the same
  for the same value so log lines can be correlated, not reversible without the key
  (``SENTINEL_LOG_KEY``; unset: a random key per process);
- ``scrub``: free text (an error message from a driver or a validator) with every IP address
  reduced to its network and every email to its domain.

Security events and database rows keep the raw values (the SIEM blocks IPs); logs do not.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from functools import lru_cache

_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%[\w.-]+)?(?![\w:])")
_EMAIL = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")


def redact_ip(ip: str | None) -> str:
    """A log-safe form of an IP: its /24 (IPv4) or /48 (IPv6) network; never the address."""
    if not ip:
        return "-"
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return "invalid"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


@lru_cache(maxsize=1)
def _key() -> bytes:
    from infra.settings import get_settings

    configured = get_settings().stream.log_key
    return configured.get_secret_value().encode() if configured else secrets.token_bytes(32)


def pseudonym(value: str | bytes | None) -> str:
    """``~`` and 12 hex digits of a keyed BLAKE2b of ``value``; ``-`` for nothing."""
    if value is None or value == "":
        return "-"
    data = value if isinstance(value, bytes) else value.encode()
    return "~" + hashlib.blake2b(data, key=_key(), digest_size=6).hexdigest()


def scrub(text: object) -> str:
    """``text`` with IPs reduced to their network and emails to their domain."""
    out = _EMAIL.sub(lambda m: f"***@{m.group(1)}", str(text))
    out = _IPV6.sub(_ip_or_same, out)
    return _IPV4.sub(_ip_or_same, out)


def _ip_or_same(match: re.Match[str]) -> str:
    """An IP's network; the text unchanged when it is no IP or a loopback address (a
    server of this host, nobody's personal data)."""
    text = match.group(0)
    try:
        if ipaddress.ip_address(text.split("%", 1)[0]).is_loopback:
            return text
    except ValueError:
        return text
    return redact_ip(text)
