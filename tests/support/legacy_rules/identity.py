"""Identity rules: who is buying — e-mail, account and wallet age, verification."""

from __future__ import annotations

from tests.support.legacy_rules.base import IDENTITY, Hit, Params, RuleContext, rule, within


def _amount(ctx: RuleContext) -> float:
    return ctx.features["amount_minor"]


@rule("disposable_email", IDENTITY, 0.5, extra_domains=[])
def disposable_email(ctx: RuleContext, p: Params) -> Hit | None:
    """The e-mail domain (or a parent domain) is a known disposable provider."""
    domain = (ctx.purchase.get("email_domain") or "").lower().strip(".")
    parts = domain.split(".")
    for i in range(len(parts) - 1):
        candidate = ".".join(parts[i:])
        if candidate in ctx.lists["disposable_domains"] or candidate in p["extra_domains"]:
            return 1.0, f"e-mail domain {domain} is a disposable provider ({candidate})"
    return None


@rule("risky_email_tld", IDENTITY, 0.2, tlds=["xyz", "top", "click", "tk", "ml", "ga", "cf", "gq"])
def risky_email_tld(ctx: RuleContext, p: Params) -> Hit | None:
    """The e-mail domain's top-level domain is one favoured for throw-away sign-ups."""
    domain = (ctx.purchase.get("email_domain") or "").lower().strip(".")
    tld = domain.rsplit(".", 1)[-1]
    if domain and tld in p["tlds"]:
        return 1.0, f"e-mail domain {domain} uses the high-risk TLD .{tld}"
    return None


@rule("missing_email_domain", IDENTITY, 0.1)
def missing_email_domain(ctx: RuleContext, p: Params) -> Hit | None:
    """No e-mail domain was sent with the purchase."""
    if not ctx.purchase.get("email_domain"):
        return 1.0, "no e-mail domain on the purchase"
    return None


@rule("new_account", IDENTITY, 0.3, max_age_days=1.0)
def new_account(ctx: RuleContext, p: Params) -> Hit | None:
    """The platform account was created less than ``max_age_days`` ago."""
    age = ctx.features["account_age_days"]
    if within(age, p["max_age_days"]):
        return 1.0, f"account created {age * 24:.1f} h ago (< {p['max_age_days']:g} d)"
    return None


@rule("new_account_high_value", IDENTITY, 0.5, max_age_hours=1.0, min_amount_minor=20_000)
def new_account_high_value(ctx: RuleContext, p: Params) -> Hit | None:
    """A high-value order from an account less than ``max_age_hours`` old."""
    age_h = ctx.features["account_age_days"] * 24
    if within(age_h, p["max_age_hours"]) and _amount(ctx) >= p["min_amount_minor"]:
        return 1.0, f"{_amount(ctx):.0f} minor units from an account {age_h * 60:.0f} min old"
    return None


@rule("missing_account_age", IDENTITY, 0.1)
def missing_account_age(ctx: RuleContext, p: Params) -> Hit | None:
    """The backend sent no account creation time."""
    if ctx.features["account_age_days"] < 0:
        return 1.0, "account creation time unknown"
    return None


@rule("unverified_phone", IDENTITY, 0.2)
def unverified_phone(ctx: RuleContext, p: Params) -> Hit | None:
    """The account's phone number is not verified."""
    if ctx.features["phone_verified"] == 0:
        return 1.0, "phone number not verified"
    return None


@rule("unverified_email", IDENTITY, 0.15)
def unverified_email(ctx: RuleContext, p: Params) -> Hit | None:
    """The account's e-mail address is not verified."""
    if ctx.features["email_verified"] == 0:
        return 1.0, "e-mail address not verified"
    return None


@rule("no_mfa_high_value", IDENTITY, 0.25, min_amount_minor=50_000)
def no_mfa_high_value(ctx: RuleContext, p: Params) -> Hit | None:
    """A high-value order from an account without MFA."""
    if ctx.features["mfa_enabled"] == 0 and _amount(ctx) >= p["min_amount_minor"]:
        return 1.0, f"{_amount(ctx):.0f} minor units without MFA on the account"
    return None


@rule("new_wallet", IDENTITY, 0.25, max_age_days=1.0, established_account_days=30.0)
def new_wallet(ctx: RuleContext, p: Params) -> Hit | None:
    """The wallet was first seen (platform or chain) less than ``max_age_days`` ago and the
    account is not an established one (a fresh wallet on an old account is routine)."""
    age, account = ctx.features["wallet_age_days"], ctx.features["account_age_days"]
    if within(age, p["max_age_days"]) and account < p["established_account_days"]:
        known = f"account {account:.0f} d old" if account >= 0 else "account age unknown"
        return 1.0, f"wallet first seen {age * 24:.1f} h ago, {known}"
    return None


@rule("new_wallet_and_account", IDENTITY, 0.3, max_age_days=1.0)
def new_wallet_and_account(ctx: RuleContext, p: Params) -> Hit | None:
    """Both the wallet and the account are younger than ``max_age_days``."""
    wallet, account = ctx.features["wallet_age_days"], ctx.features["account_age_days"]
    if within(wallet, p["max_age_days"]) and within(account, p["max_age_days"]):
        return 1.0, f"wallet {wallet:.2f} d and account {account:.2f} d old"
    return None


@rule("fresh_unverified_identity", IDENTITY, 0.5, max_age_days=7.0)
def fresh_unverified_identity(ctx: RuleContext, p: Params) -> Hit | None:
    """A young account with neither phone nor e-mail verified."""
    f = ctx.features
    if within(f["account_age_days"], p["max_age_days"]) and not (
        f["phone_verified"] or f["email_verified"]
    ):
        return 1.0, f"account {f['account_age_days']:.1f} d old, phone and e-mail unverified"
    return None


def _marked(ctx: RuleContext, kinds: tuple[str, str], what: str) -> Hit | None:
    f = ctx.features
    counts = [f[f"fraud_marks_{kind}"] for kind in kinds]
    if not any(c > 0 for c in counts):
        return None
    return 1.0, (f"{sum(counts):g} confirmed fraud on this {what}, latest "
                 f"{f['days_since_fraud_mark']:.1f} d ago")


@rule("confirmed_fraud_wallet", IDENTITY, 0.6)
def confirmed_fraud_wallet(ctx: RuleContext, p: Params) -> Hit | None:
    """The wallet or the account has a purchase confirmed as fraud before this one."""
    return _marked(ctx, ("wallet", "account"), "wallet or account")


@rule("confirmed_fraud_instrument", IDENTITY, 0.6)
def confirmed_fraud_instrument(ctx: RuleContext, p: Params) -> Hit | None:
    """The card or the device was used in a purchase confirmed as fraud before this one."""
    return _marked(ctx, ("card", "device"), "card or device")
