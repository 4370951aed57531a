"""Transaction rules: the payment — amounts, cards, probes, duplicates, countries."""

from __future__ import annotations

from tests.support.legacy_rules.base import TRANSACTION, Hit, Params, RuleContext, at_least, rule

HIGH_RISK_COUNTRIES = ["KP", "IR", "SY", "CU", "RU", "BY"]

at_least("high_amount", TRANSACTION, 0.3, "amount_minor", "min_amount_minor", 200_000,
         "minor units in one order")  # fmt: skip
at_least("small_probe_burst", TRANSACTION, 0.4, "small_probes_1h", "min_probes", 5,
         "small probe purchases in the last hour")  # fmt: skip
at_least("duplicate_transaction", TRANSACTION, 0.5, "duplicates_10m", "min_duplicates", 1,
         "identical orders (show, amount, quantity) in the last 10 min")  # fmt: skip
at_least("multiple_cards", TRANSACTION, 0.5, "cards_24h", "max_cards", 3,
         "distinct cards used by this wallet in 24 h")  # fmt: skip
at_least("multiple_payment_methods", TRANSACTION, 0.3, "payment_methods_24h", "max_methods", 3,
         "distinct payment methods used by this wallet in 24 h")  # fmt: skip


def _country(ctx: RuleContext) -> str | None:
    geo = ctx.purchase.get("geo")
    return geo["country"].upper() if geo and geo.get("country") else None


@rule("card_testing", TRANSACTION, 0.8, min_probes=3, min_amount_minor=10_000)
def card_testing(ctx: RuleContext, p: Params) -> Hit | None:
    """Several small probe purchases in the last hour, then a large one."""
    probes, amount = ctx.features["small_probes_1h"], ctx.features["amount_minor"]
    if probes >= p["min_probes"] and amount >= p["min_amount_minor"]:
        return 1.0, f"{probes:g} small probes in 1 h, then {amount:.0f} minor units"
    return None


@rule("amount_jump", TRANSACTION, 0.4, min_ratio=5.0, min_history=3)
def amount_jump(ctx: RuleContext, p: Params) -> Hit | None:
    """The amount is many times the wallet's average, with enough history to tell."""
    ratio, history = ctx.features["amount_vs_avg"], ctx.features["purchases_total"]
    if history >= p["min_history"] and ratio >= p["min_ratio"]:
        return min(1.0, ratio / p["min_ratio"] / 2), (
            f"amount is {ratio:.1f}x the wallet's average over {history:g} purchases"
        )
    return None


@rule("high_amount_1h", TRANSACTION, 0.35, max_amount_minor=500_000)
def high_amount_1h(ctx: RuleContext, p: Params) -> Hit | None:
    """The wallet's spend in the last hour, this order included, is over the limit."""
    total = ctx.features["amount_1h_minor"] + ctx.features["amount_minor"]
    if total >= p["max_amount_minor"]:
        return 1.0, f"{total:.0f} minor units spent in 1 h (limit {p['max_amount_minor']})"
    return None


@rule("country_mismatch", TRANSACTION, 0.35)
def country_mismatch(ctx: RuleContext, p: Params) -> Hit | None:
    """The card's issuing country differs from the buyer's geolocated country."""
    card, geo = ctx.purchase.get("card_country"), _country(ctx)
    if card and geo and card.upper() != geo:
        return 1.0, f"card issued in {card.upper()}, buyer located in {geo}"
    return None


@rule("high_risk_country", TRANSACTION, 0.4, countries=HIGH_RISK_COUNTRIES)
def high_risk_country(ctx: RuleContext, p: Params) -> Hit | None:
    """The buyer is located in a high-risk country."""
    geo = _country(ctx)
    if geo and geo in p["countries"]:
        return 1.0, f"buyer located in high-risk country {geo}"
    return None


@rule("high_risk_card_country", TRANSACTION, 0.4, countries=HIGH_RISK_COUNTRIES)
def high_risk_card_country(ctx: RuleContext, p: Params) -> Hit | None:
    """The card was issued in a high-risk country."""
    card = (ctx.purchase.get("card_country") or "").upper()
    if card and card in p["countries"]:
        return 1.0, f"card issued in high-risk country {card}"
    return None


@rule("price_anomaly", TRANSACTION, 0.25, high_ratio=3.0, low_ratio=0.3)
def price_anomaly(ctx: RuleContext, p: Params) -> Hit | None:
    """The unit price is far above or below the show's recent price level."""
    ratio = ctx.features["price_deviation"]
    if ratio >= p["high_ratio"] or 0 <= ratio <= p["low_ratio"]:
        return 1.0, f"unit price is {ratio:.2f}x the show's recent median"
    return None


@rule("crypto_new_wallet_high_value", TRANSACTION, 0.35, max_age_days=1.0, min_amount_minor=50_000)
def crypto_new_wallet_high_value(ctx: RuleContext, p: Params) -> Hit | None:
    """A large crypto payment from a wallet first seen less than a day ago."""
    age, amount = ctx.features["wallet_age_days"], ctx.features["amount_minor"]
    if (
        ctx.purchase.get("payment_method") == "CRYPTO"
        and 0 <= age < p["max_age_days"]
        and amount >= p["min_amount_minor"]
    ):
        return 1.0, f"{amount:.0f} minor units in crypto from a wallet {age * 24:.1f} h old"
    return None
