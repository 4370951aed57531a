"""Ticketing rules: scalping, bots at the sale opening, resale abuse, wash trading."""

from __future__ import annotations

from tests.support.legacy_rules.base import (
    TICKETING,
    Hit,
    Params,
    RuleContext,
    at_least,
    rule,
    within,
)

at_least("bulk_order", TICKETING, 0.4, "quantity", "max_quantity", 10,
         "tickets in a single order")  # fmt: skip
at_least("resale_markup_high", TICKETING, 0.4, "resale_markup", "max_markup", 3.0,
         "x the primary price asked on resale")  # fmt: skip
at_least("serial_reseller", TICKETING, 0.35, "resales_30d", "max_resales", 10,
         "tickets resold by this wallet in 30 d")  # fmt: skip


@rule("blocklisted_wallet", TICKETING, 1.0, hard=True)
def blocklisted_wallet(ctx: RuleContext, p: Params) -> Hit | None:
    """The buying wallet is on the blocklist (passed in by the caller): forces BLOCKED."""
    wallet = ctx.purchase.get("wallet")
    if wallet and wallet in ctx.blocked_wallets:
        return 1.0, f"wallet {wallet} is blocklisted"
    return None


@rule("blocklisted_seller", TICKETING, 1.0, hard=True)
def blocklisted_seller(ctx: RuleContext, p: Params) -> Hit | None:
    """The resale's seller wallet is on the blocklist: forces BLOCKED."""
    seller = ctx.purchase.get("seller_wallet")
    if seller and seller in ctx.blocked_wallets:
        return 1.0, f"seller wallet {seller} is blocklisted"
    return None


@rule("quantity_over_limit", TICKETING, 0.5, max_tickets=6)
def quantity_over_limit(ctx: RuleContext, p: Params) -> Hit | None:
    """This order takes the wallet over the per-wallet ticket limit for the show (7 d)."""
    before, quantity = ctx.features["show_tickets_7d"], ctx.features["quantity"]
    if before + quantity > p["max_tickets"]:
        return 1.0, (
            f"{before + quantity:g} tickets for show {ctx.purchase.get('show_id')} "
            f"(limit {p['max_tickets']} per wallet)"
        )
    return None


@rule("many_tickets_24h", TICKETING, 0.45, max_tickets=12)
def many_tickets_24h(ctx: RuleContext, p: Params) -> Hit | None:
    """The wallet's tickets across all shows in 24 h, this order included, are over the limit."""
    total = ctx.features["tickets_24h"] + ctx.features["quantity"]
    if total >= p["max_tickets"]:
        return 1.0, f"{total:g} tickets bought in 24 h (limit {p['max_tickets']})"
    return None


@rule("sale_open_snipe", TICKETING, 0.5, max_secs=3.0)
def sale_open_snipe(ctx: RuleContext, p: Params) -> Hit | None:
    """Bought within seconds of the sale opening: faster than a person can click."""
    secs = ctx.features["secs_since_sale_open"]
    if ctx.features["before_sale_open"] == 0 and within(secs, p["max_secs"]):
        return 1.0, f"bought {secs:.2f} s after the sale opened"
    return None


@rule("purchase_before_sale_open", TICKETING, 0.5)
def purchase_before_sale_open(ctx: RuleContext, p: Params) -> Hit | None:
    """A primary purchase before the sale opened: the queue was bypassed."""
    if ctx.features["before_sale_open"] == 1 and ctx.features["is_resale"] == 0:
        return 1.0, "primary purchase before the sale opened"
    return None


@rule("resale_markup_extreme", TICKETING, 0.7, max_markup=10.0)
def resale_markup_extreme(ctx: RuleContext, p: Params) -> Hit | None:
    """A resale at an extreme multiple of the primary price (laundering or gouging)."""
    markup = ctx.features["resale_markup"]
    if markup >= p["max_markup"]:
        return 1.0, f"resale at {markup:.1f}x the primary price (limit {p['max_markup']:g}x)"
    return None


@rule("wash_trading_cycle", TICKETING, 0.8, min_cycles=1)
def wash_trading_cycle(ctx: RuleContext, p: Params) -> Hit | None:
    """A ticket came back to a wallet that sold it (A→B→…→A), or this one is coming back."""
    cycles, back = ctx.features["wash_cycles_30d"], ctx.features["ticket_previously_held"]
    if back == 1:
        return 1.0, f"buying back ticket {ctx.purchase.get('ticket_id')} this wallet sold"
    if cycles >= p["min_cycles"]:
        return 1.0, f"{cycles:g} tickets returned to this wallet after it sold them (30 d)"
    return None


@rule("fast_flip", TICKETING, 0.5, max_minutes=60.0)
def fast_flip(ctx: RuleContext, p: Params) -> Hit | None:
    """The wallet resold a ticket within minutes of minting it (30 d)."""
    minutes = ctx.features["wallet_min_flip_min"]
    if within(minutes, p["max_minutes"]):
        return 1.0, f"wallet resold a ticket {minutes:.0f} min after minting it"
    return None


@rule("freshly_flipped_ticket", TICKETING, 0.3, max_minutes=30.0)
def freshly_flipped_ticket(ctx: RuleContext, p: Params) -> Hit | None:
    """This resale ticket was first sold only minutes ago: the seller is flipping."""
    minutes = ctx.features["mint_to_resale_min"]
    if within(minutes, p["max_minutes"]):
        return 1.0, f"ticket resold {minutes:.0f} min after its primary sale"
    return None


@rule("self_resale", TICKETING, 0.7)
def self_resale(ctx: RuleContext, p: Params) -> Hit | None:
    """The buyer is also the seller of the resale."""
    seller = ctx.purchase.get("seller_wallet")
    if seller and seller == ctx.purchase.get("wallet"):
        return 1.0, f"wallet {seller} is buying its own listing"
    return None


@rule("hot_show_new_wallet", TICKETING, 0.3, min_popularity=500, max_age_days=1.0)
def hot_show_new_wallet(ctx: RuleContext, p: Params) -> Hit | None:
    """A brand-new wallet buying into a show selling hundreds an hour."""
    busy, age = ctx.features["show_popularity_1h"], ctx.features["wallet_age_days"]
    if busy >= p["min_popularity"] and within(age, p["max_age_days"]):
        return 1.0, f"show sold {busy:g} in the last hour; wallet {age * 24:.1f} h old"
    return None


@rule("short_average_hold", TICKETING, 0.35, max_hours=24.0, min_resales=3)
def short_average_hold(ctx: RuleContext, p: Params) -> Hit | None:
    """The wallet holds tickets only briefly before selling them on."""
    hours, resales = ctx.features["avg_hold_time_h"], ctx.features["resales_30d"]
    if resales >= p["min_resales"] and within(hours, p["max_hours"]):
        return 1.0, f"average hold {hours:.1f} h over {resales:g} resales"
    return None
