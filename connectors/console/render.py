"""HTML rendering (Jinja2, autoescaped) and JSON answers, both through ``for_principal`` so
that a viewer never receives an IP address, whichever way they read."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from connectors.console.principal import Principal, for_principal
from processors.money import exponent

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
SECTIONS = (
    ("kpis", "/", "KPIs"),
    ("fraud", "/fraud", "Fraud"),
    ("cases", "/cases", "Review queue"),
    ("traffic", "/traffic", "Traffic and abuse"),
    ("model", "/model", "Model health"),
    ("system", "/system", "System"),
    ("siem", "/siem", "SIEM"),
)


def age(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago: ``3d 4h``, ``2h 5m``, ``4m 12s``, ``12s``."""
    if value is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - value).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def until_ms(epoch_ms: int | None) -> str:
    """An expiry (epoch ms) as ``in 1h 5m``; ``never`` for None."""
    if epoch_ms is None:
        return "never"
    left = max(0, int(epoch_ms / 1000 - datetime.now(UTC).timestamp()))
    return "in " + age(datetime.fromtimestamp(0, UTC), datetime.fromtimestamp(left, UTC))


def minor_digits(currency: str) -> int:
    """The currency's minor-unit digits (processors.money); 2 when unknown or not given."""
    try:
        return exponent(currency) if currency else 2
    except KeyError:
        return 2


def money(minor: int | None, currency: str = "") -> str:
    """Integer minor units as the currency's amount, exactly: ``123456, "EUR"`` → ``1,234.56 EUR``."""
    if minor is None:
        return "-"
    digits = minor_digits(currency)
    amount = Decimal(int(minor)).scaleb(-digits)
    return f"{amount:,.{digits}f} {currency}".strip()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def chart(spec: dict) -> Markup:
    """A chart's data as JSON for a ``<script type="application/json">`` (``</`` escaped)."""
    text = orjson.dumps(spec, default=_epoch).decode().replace("</", "<\\/")
    return Markup(text)


def _epoch(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(type(value).__name__)


templates.env.filters.update(ago=age, until=until_ms, chart=chart, digits=minor_digits, money=money, pct=_pct, num=_num)
templates.env.globals["sections"] = SECTIONS


def page(
    request: Request, name: str, principal: Principal, section: str, status: int = 200,
    **context: Any,
) -> Response:
    data = for_principal(principal, context)
    return templates.TemplateResponse(
        request, name, {"user": principal, "section": section, "csrf": principal.csrf_token,
                        **data}, status_code=status,
    )  # fmt: skip


def json_answer(principal: Principal | None, data: Any, status: int = 200) -> Response:
    body = for_principal(principal, data) if principal else data
    return Response(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), status,
                    media_type="application/json")  # fmt: skip
