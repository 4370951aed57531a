"""Behavioral rules: how the wallet buys — pace, spread, automation, movement."""

from __future__ import annotations

from tests.support.legacy_rules.base import (
    BEHAVIORAL,
    Hit,
    Params,
    RuleContext,
    at_least,
    rule,
    within,
)

DAY_SECS = 86_400.0

at_least("high_velocity_1h", BEHAVIORAL, 0.45, "velocity_1h", "max_purchases", 5,
         "purchases by this wallet in the last hour")  # fmt: skip
at_least("high_velocity_24h", BEHAVIORAL, 0.35, "velocity_24h", "max_purchases", 20,
         "purchases by this wallet in the last 24 h")  # fmt: skip
at_least("many_shows_24h", BEHAVIORAL, 0.3, "distinct_shows_24h", "max_shows", 5,
         "distinct shows bought by this wallet in 24 h")  # fmt: skip
at_least("many_ips_24h", BEHAVIORAL, 0.3, "ips_24h", "max_ips", 4,
         "distinct IPs used by this wallet in 24 h")  # fmt: skip
at_least("many_devices_24h", BEHAVIORAL, 0.35, "devices_24h", "max_devices", 3,
         "distinct devices used by this wallet in 24 h")  # fmt: skip
at_least("many_countries_24h", BEHAVIORAL, 0.45, "countries_24h", "max_countries", 3,
         "distinct countries for this wallet in 24 h")  # fmt: skip


@rule("rapid_sequence", BEHAVIORAL, 0.4, min_gap_secs=30.0)
def rapid_sequence(ctx: RuleContext, p: Params) -> Hit | None:
    """Less than ``min_gap_secs`` since the wallet's previous purchase."""
    gap = ctx.features["secs_since_last_purchase"]
    if within(gap, p["min_gap_secs"]):
        return 1.0 - gap / p["min_gap_secs"] / 2, f"{gap:.1f} s after the previous purchase"
    return None


@rule("bot_user_agent", BEHAVIORAL, 0.6, patterns=[
    "headless", "phantomjs", "selenium", "puppeteer", "playwright", "python-requests",
    "curl/", "wget/", "go-http-client", "scrapy", "httpclient", "okhttp", "bot"])  # fmt: skip
def bot_user_agent(ctx: RuleContext, p: Params) -> Hit | None:
    """The user agent names an automation tool or HTTP library."""
    agent = (ctx.purchase.get("user_agent") or "").lower()
    for pattern in p["patterns"]:
        if pattern in agent:
            return 1.0, f"user agent contains {pattern!r}"
    return None


@rule("missing_user_agent", BEHAVIORAL, 0.2)
def missing_user_agent(ctx: RuleContext, p: Params) -> Hit | None:
    """No user agent: a script, not a browser or the app."""
    if not ctx.purchase.get("user_agent"):
        return 1.0, "no user agent on the purchase"
    return None


@rule("high_geo_speed", BEHAVIORAL, 0.3, max_kmh=900.0, min_km=100.0)
def high_geo_speed(ctx: RuleContext, p: Params) -> Hit | None:
    """Moving faster than an airliner since the wallet's previous location."""
    speed, km = ctx.features["geo_speed_kmh"], ctx.features["geo_distance_km"]
    if speed >= p["max_kmh"] and km >= p["min_km"]:
        return 1.0, f"{km:.0f} km from the previous location at {speed:.0f} km/h"
    return None


@rule("first_purchase_high_value", BEHAVIORAL, 0.3, min_amount_minor=100_000)
def first_purchase_high_value(ctx: RuleContext, p: Params) -> Hit | None:
    """The wallet's first purchase ever is a large one."""
    amount = ctx.features["amount_minor"]
    if ctx.features["purchases_total"] == 0 and amount >= p["min_amount_minor"]:
        return 1.0, f"first purchase of this wallet is {amount:.0f} minor units"
    return None


@rule("dormant_reactivation", BEHAVIORAL, 0.2, min_idle_days=90.0, min_ratio=3.0)
def dormant_reactivation(ctx: RuleContext, p: Params) -> Hit | None:
    """A long-idle wallet comes back with an unusually large order."""
    idle_days = ctx.features["secs_since_last_purchase"] / DAY_SECS
    ratio = ctx.features["amount_vs_avg"]
    if idle_days >= p["min_idle_days"] and ratio >= p["min_ratio"]:
        return 1.0, f"idle {idle_days:.0f} d, then {ratio:.1f}x its average amount"
    return None
