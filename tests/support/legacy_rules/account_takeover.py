"""Account-takeover rules: a legitimate account in someone else's hands."""

from __future__ import annotations

from tests.support.legacy_rules.base import (
    ACCOUNT_TAKEOVER,
    Hit,
    Params,
    RuleContext,
    at_least,
    rule,
    within,
)

HOUR_SECS = 3_600.0

at_least("many_failed_logins", ACCOUNT_TAKEOVER, 0.45, "failed_logins_1h", "max_failures", 5,
         "failed logins in the hour before the purchase")  # fmt: skip
at_least("mfa_failures", ACCOUNT_TAKEOVER, 0.5, "mfa_failures_1h", "max_failures", 2,
         "failed MFA challenges in the hour before the purchase")  # fmt: skip


@rule("failed_logins_then_success", ACCOUNT_TAKEOVER, 0.6, min_failures=3)
def failed_logins_then_success(ctx: RuleContext, p: Params) -> Hit | None:
    """A successful login in the last hour came after a run of failed ones."""
    fails = ctx.features["fails_before_login_ok"]
    if fails >= p["min_failures"]:
        secs = ctx.features["secs_since_login_ok"]
        return 1.0, f"{fails:g} failed logins, then a success {secs / 60:.0f} min ago"
    return None


@rule("impossible_travel", ACCOUNT_TAKEOVER, 0.7)
def impossible_travel(ctx: RuleContext, p: Params) -> Hit | None:
    """More than 500 km from the wallet's previous location in under an hour."""
    if ctx.features["impossible_travel"] == 1:
        km, kmh = ctx.features["geo_distance_km"], ctx.features["geo_speed_kmh"]
        return 1.0, f"{km:.0f} km from the previous location in under 1 h ({kmh:.0f} km/h)"
    return None


@rule("password_change_new_device", ACCOUNT_TAKEOVER, 0.7, within_hours=24.0)
def password_change_new_device(ctx: RuleContext, p: Params) -> Hit | None:
    """The password changed recently and the purchase comes from a device never seen."""
    secs = ctx.features["secs_since_password_change"]
    if within(secs, p["within_hours"] * HOUR_SECS) and ctx.features["new_device"] == 1:
        return 1.0, f"password changed {secs / 60:.0f} min ago, purchase from a new device"
    return None


@rule("purchase_right_after_password_change", ACCOUNT_TAKEOVER, 0.5, within_minutes=10.0)
def purchase_right_after_password_change(ctx: RuleContext, p: Params) -> Hit | None:
    """A purchase within minutes of a password change."""
    secs = ctx.features["secs_since_password_change"]
    if within(secs, p["within_minutes"] * 60):
        return 1.0, f"purchase {secs:.0f} s after a password change"
    return None


@rule("recent_email_change", ACCOUNT_TAKEOVER, 0.35, within_hours=24.0)
def recent_email_change(ctx: RuleContext, p: Params) -> Hit | None:
    """The account's e-mail address changed recently."""
    secs = ctx.features["secs_since_email_change"]
    if within(secs, p["within_hours"] * HOUR_SECS):
        return 1.0, f"e-mail changed {secs / 3600:.1f} h before the purchase"
    return None


@rule("email_and_password_changed", ACCOUNT_TAKEOVER, 0.6, within_hours=24.0)
def email_and_password_changed(ctx: RuleContext, p: Params) -> Hit | None:
    """Both e-mail and password changed recently: credentials taken over."""
    limit = p["within_hours"] * HOUR_SECS
    email, password = (
        ctx.features["secs_since_email_change"],
        ctx.features["secs_since_password_change"],
    )
    if within(email, limit) and within(password, limit):
        return 1.0, f"e-mail and password both changed in the last {p['within_hours']:g} h"
    return None


@rule("new_device_high_value", ACCOUNT_TAKEOVER, 0.35, min_amount_minor=30_000, min_history=1)
def new_device_high_value(ctx: RuleContext, p: Params) -> Hit | None:
    """An established wallet places a large order from a device never seen before."""
    f = ctx.features
    if (
        f["new_device"] == 1
        and f["purchases_total"] >= p["min_history"]
        and f["amount_minor"] >= p["min_amount_minor"]
    ):
        return 1.0, f"{f['amount_minor']:.0f} minor units from a new device"
    return None


@rule("new_device_new_country", ACCOUNT_TAKEOVER, 0.5)
def new_device_new_country(ctx: RuleContext, p: Params) -> Hit | None:
    """A new device in a country the wallet has not bought from in the last week."""
    if ctx.features["new_device"] == 1 and ctx.features["new_country"] == 1:
        geo = ctx.purchase.get("geo") or {}
        return 1.0, f"new device in a new country ({geo.get('country')})"
    return None


@rule("failed_login_new_device", ACCOUNT_TAKEOVER, 0.35, min_failures=1)
def failed_login_new_device(ctx: RuleContext, p: Params) -> Hit | None:
    """Failed logins in the last hour and a purchase from a new device."""
    fails = ctx.features["failed_logins_1h"]
    if fails >= p["min_failures"] and ctx.features["new_device"] == 1:
        return 1.0, f"{fails:g} failed logins in 1 h, purchase from a new device"
    return None
