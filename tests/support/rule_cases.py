"""Hand-built rule cases: a clean purchase and its features, and for every rule of the shipped
rules file a case where it fires and a near miss where it does not. A case is a dict of
overrides: "p" (purchase fields), "f" (features), "bw" / "bi" (blocked wallets / IPs).

    batch = case_batch([case, ...])           # one row per case
    evaluate_cases([case, ...], ruleset)      # one Evaluation per case
"""

from __future__ import annotations

import copy
import math
import tomllib

import numpy as np

from processors.rules import (
    DEFAULT_RULES_PATH,
    Evaluation,
    RuleBatch,
    RuleSet,
    evaluate_batch,
    ruleset_from_dict,
)

A, B, C = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40
CLEAN_IP = "81.2.69.160"
HOUR, DAY = 3_600.0, 86_400.0

CLEAN_FEATURES: dict[str, float] = {
    "velocity_1h": 0, "velocity_24h": 1, "amount_1h_minor": 0, "amount_24h_minor": 5_000,
    "tickets_24h": 1, "show_tickets_7d": 0, "secs_since_last_purchase": 2 * HOUR,
    "purchases_total": 10, "amount_vs_avg": 1.0, "small_probes_1h": 0, "duplicates_10m": 0,
    "distinct_shows_24h": 2, "payment_methods_24h": 1, "cards_24h": 1, "ips_24h": 1,
    "devices_24h": 1, "countries_24h": 1, "new_country": 0, "wallet_age_days": 200,
    "account_age_days": 400, "geo_distance_km": 3, "geo_speed_kmh": 5, "impossible_travel": 0,
    "wallets_per_ip_24h": 1, "wallets_per_device_24h": 1, "wallets_per_card_24h": 1,
    "linked_wallets": 1, "failed_logins_1h": 0, "mfa_failures_1h": 0,
    "fails_before_login_ok": 0, "secs_since_login_ok": 5 * HOUR,
    "secs_since_password_change": -1, "secs_since_email_change": -1, "new_device": 0,
    "avg_hold_time_h": -1, "mint_to_resale_min": -1, "wallet_min_flip_min": -1,
    "resales_30d": 0, "wash_cycles_30d": 0, "ticket_previously_held": 0, "holdings_count": 3,
    "price_deviation": 1.0, "resale_markup": -1, "show_popularity_1h": 40,
    "secs_since_sale_open": DAY, "before_sale_open": 0, "quantity": 2, "amount_minor": 10_000,
    "log_amount": math.log1p(10_000), "is_resale": 0, "mfa_enabled": 1, "phone_verified": 1,
    "email_verified": 1,
    # crowds (processors/crowd.py): nobody else around, a consumer network, same country
    "tier_wallets_10m": 1, "tier_rate_ratio": 1.0, "coord_wallets_10m": 1,
    "net_wallets_1h": 1, "asn_rate_ratio": 1.0, "asn_hosting": 0, "ip_country_mismatch": 0,
    "bin_wallets_1h": -1, "bin_cards_1h": -1, "bin_small_1h": -1, "ua_rate_ratio": 1.0,
    # confirmed fraud (processors/marks.py): none known
    "fraud_marks_wallet": 0, "fraud_marks_card": 0, "fraud_marks_device": 0,
    "fraud_marks_account": 0, "fraud_marks_cluster": 0, "days_since_fraud_mark": -1,
}  # fmt: skip

CLEAN_PURCHASE = {
    "purchase_id": "p1", "wallet": A, "organizer_id": "org1", "show_id": "show1",
    "ticket_id": "0xee:1", "quantity": 2, "unit_price_minor": 5_000, "channel": "PRIMARY",
    "seller_wallet": None, "payment_method": "CARD", "card_fingerprint": "card1",
    "card_country": "DE", "email_domain": "example.com", "ip": CLEAN_IP,
    "geo": {"lat": 52.52, "lon": 13.405, "country": "DE"}, "device_id": "dev1",
    "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)",
}  # fmt: skip


def f(**features: float) -> dict:
    return {"f": features}


def p(**fields: object) -> dict:
    return {"p": fields}


# rule id → (a context where it fires, a near miss where it does not)
CASES: dict[str, tuple[dict, dict]] = {
    # identity
    "disposable_email": (p(email_domain="x.mailinator.com"), p(email_domain="notmailinator.com")),
    "risky_email_tld": (p(email_domain="deals.xyz"), p(email_domain="xyz.de")),
    "missing_email_domain": (p(email_domain=None), p(email_domain="example.com")),
    "new_account": (f(account_age_days=0.5), f(account_age_days=1.0)),
    "confirmed_fraud_wallet": (f(fraud_marks_account=1, days_since_fraud_mark=3.0),
                               f(fraud_marks_card=1, fraud_marks_cluster=2,
                                 days_since_fraud_mark=3.0)),
    "confirmed_fraud_instrument": (f(fraud_marks_device=2, days_since_fraud_mark=0.5),
                                   f(fraud_marks_wallet=1, days_since_fraud_mark=0.5)),
    "new_account_high_value": (
        f(account_age_days=0.5 / 24, amount_minor=20_000),
        f(account_age_days=0.5 / 24, amount_minor=19_999),
    ),
    "missing_account_age": (f(account_age_days=-1), f(account_age_days=0)),
    "unverified_phone": (f(phone_verified=0), f(phone_verified=1)),
    "unverified_email": (f(email_verified=0), f(email_verified=1)),
    "no_mfa_high_value": (
        f(mfa_enabled=0, amount_minor=50_000),
        f(mfa_enabled=0, amount_minor=49_999),
    ),
    "new_wallet": (
        f(wallet_age_days=0, account_age_days=5),
        f(wallet_age_days=0, account_age_days=30),  # a fresh wallet on an established account
    ),
    "new_wallet_and_account": (
        f(wallet_age_days=0.2, account_age_days=0.3),
        f(wallet_age_days=0.2, account_age_days=-1),
    ),
    "fresh_unverified_identity": (
        f(account_age_days=2, phone_verified=0, email_verified=0),
        f(account_age_days=2, phone_verified=1, email_verified=0),
    ),
    # behavioral
    "high_velocity_1h": (f(velocity_1h=5), f(velocity_1h=4)),
    "high_velocity_24h": (f(velocity_24h=20), f(velocity_24h=19)),
    "many_shows_24h": (f(distinct_shows_24h=5), f(distinct_shows_24h=4)),
    "many_ips_24h": (f(ips_24h=4), f(ips_24h=3)),
    "many_devices_24h": (f(devices_24h=3), f(devices_24h=2)),
    "many_countries_24h": (f(countries_24h=3), f(countries_24h=2)),
    "rapid_sequence": (f(secs_since_last_purchase=10), f(secs_since_last_purchase=30)),
    "bot_user_agent": (p(user_agent="python-requests/2.31"), p(user_agent="Mozilla/5.0 (X11)")),
    "missing_user_agent": (p(user_agent=None), p(user_agent="Mozilla/5.0")),
    "high_geo_speed": (
        f(geo_speed_kmh=1_000, geo_distance_km=800),
        f(geo_speed_kmh=1_000, geo_distance_km=50),
    ),
    "first_purchase_high_value": (
        f(purchases_total=0, amount_minor=100_000),
        f(purchases_total=1, amount_minor=100_000),
    ),
    "dormant_reactivation": (
        f(secs_since_last_purchase=100 * DAY, amount_vs_avg=4),
        f(secs_since_last_purchase=100 * DAY, amount_vs_avg=2),
    ),
    # transaction
    "high_amount": (f(amount_minor=200_000), f(amount_minor=199_999)),
    "small_probe_burst": (f(small_probes_1h=5), f(small_probes_1h=4)),
    "duplicate_transaction": (f(duplicates_10m=1), f(duplicates_10m=0)),
    "multiple_cards": (f(cards_24h=3), f(cards_24h=2)),
    "multiple_payment_methods": (f(payment_methods_24h=3), f(payment_methods_24h=2)),
    "card_testing": (
        f(small_probes_1h=3, amount_minor=10_000),
        f(small_probes_1h=3, amount_minor=9_999),
    ),
    "amount_jump": (
        f(amount_vs_avg=5, purchases_total=3),
        f(amount_vs_avg=5, purchases_total=2),
    ),
    "high_amount_1h": (f(amount_1h_minor=490_000), f(amount_1h_minor=489_999)),
    "country_mismatch": (p(card_country="US"), p(card_country="de")),
    "high_risk_country": (
        p(geo={"lat": 39.0, "lon": 125.7, "country": "KP"}),
        p(geo={"lat": 52.5, "lon": 13.4, "country": "DE"}),
    ),
    "high_risk_card_country": (p(card_country="IR"), p(card_country="DE")),
    "price_anomaly": (f(price_deviation=3.0), f(price_deviation=2.9)),
    "crypto_new_wallet_high_value": (
        {"p": {"payment_method": "CRYPTO"}, "f": {"wallet_age_days": 0.5, "amount_minor": 50_000}},
        {"p": {"payment_method": "CARD"}, "f": {"wallet_age_days": 0.5, "amount_minor": 50_000}},
    ),
    # network
    "same_ip_many_wallets": (f(wallets_per_ip_24h=5), f(wallets_per_ip_24h=4)),
    "same_device_many_wallets": (f(wallets_per_device_24h=3), f(wallets_per_device_24h=2)),
    "shared_card_many_wallets": (f(wallets_per_card_24h=2), f(wallets_per_card_24h=1)),
    "linked_wallet_cluster": (f(linked_wallets=6), f(linked_wallets=5)),
    "blocklisted_ip": ({"bi": {CLEAN_IP}}, {"bi": {"81.2.69.161"}}),
    "datacenter_ip": (p(ip="3.5.1.1"), p(ip=CLEAN_IP)),
    "tor_exit_node": (p(ip="185.220.101.4"), p(ip="185.220.104.1")),
    "proxy_vpn_ip": (p(ip="146.70.1.1"), p(ip="147.70.1.1")),
    "non_public_ip": (p(ip="10.0.0.1"), p(ip=CLEAN_IP)),
    "invalid_ip": (p(ip="not-an-ip"), p(ip="2a00:1450:4001:80b::200e")),
    # account takeover
    "many_failed_logins": (f(failed_logins_1h=5), f(failed_logins_1h=4)),
    "mfa_failures": (f(mfa_failures_1h=2), f(mfa_failures_1h=1)),
    "failed_logins_then_success": (
        f(fails_before_login_ok=3, secs_since_login_ok=600),
        f(fails_before_login_ok=2, secs_since_login_ok=600),
    ),
    "impossible_travel": (
        f(impossible_travel=1, geo_distance_km=900, geo_speed_kmh=1_800),
        f(impossible_travel=0, geo_distance_km=900, geo_speed_kmh=300),
    ),
    "password_change_new_device": (
        f(secs_since_password_change=HOUR, new_device=1),
        f(secs_since_password_change=HOUR, new_device=0),
    ),
    "purchase_right_after_password_change": (
        f(secs_since_password_change=120),
        f(secs_since_password_change=600),
    ),
    "recent_email_change": (f(secs_since_email_change=HOUR), f(secs_since_email_change=DAY)),
    "email_and_password_changed": (
        f(secs_since_email_change=HOUR, secs_since_password_change=HOUR),
        f(secs_since_email_change=HOUR, secs_since_password_change=-1),
    ),
    "new_device_high_value": (
        f(new_device=1, amount_minor=30_000),
        f(new_device=1, amount_minor=29_999),
    ),
    "new_device_new_country": (f(new_device=1, new_country=1), f(new_device=1, new_country=-1)),
    "failed_login_new_device": (
        f(failed_logins_1h=1, new_device=1),
        f(failed_logins_1h=0, new_device=1),
    ),
    # ticketing
    "bulk_order": (f(quantity=10), f(quantity=9)),
    "resale_markup_high": (f(resale_markup=3.0), f(resale_markup=2.9)),
    "serial_reseller": (f(resales_30d=10), f(resales_30d=9)),
    "blocklisted_wallet": ({"bw": {A}}, {"bw": {B}}),
    "blocklisted_seller": (
        {"p": {"seller_wallet": B, "channel": "RESALE"}, "bw": {B}},
        {"p": {"seller_wallet": B, "channel": "RESALE"}, "bw": {C}},
    ),
    "quantity_over_limit": (
        f(show_tickets_7d=5, quantity=2),
        f(show_tickets_7d=4, quantity=2),  # exactly the limit of 6
    ),
    "many_tickets_24h": (f(tickets_24h=10, quantity=2), f(tickets_24h=9, quantity=2)),
    "sale_open_snipe": (f(secs_since_sale_open=1.5), f(secs_since_sale_open=3.0)),
    "purchase_before_sale_open": (
        f(before_sale_open=1, secs_since_sale_open=0, is_resale=0),
        f(before_sale_open=1, secs_since_sale_open=0, is_resale=1),
    ),
    "resale_markup_extreme": (f(resale_markup=10.0), f(resale_markup=9.9)),
    "wash_trading_cycle": (f(wash_cycles_30d=1), f(wash_cycles_30d=0)),
    "fast_flip": (f(wallet_min_flip_min=30), f(wallet_min_flip_min=60)),
    "freshly_flipped_ticket": (f(mint_to_resale_min=5), f(mint_to_resale_min=30)),
    "self_resale": (p(seller_wallet=A, channel="RESALE"), p(seller_wallet=B, channel="RESALE")),
    "hot_show_new_wallet": (
        f(show_popularity_1h=500, wallet_age_days=0.1),
        f(show_popularity_1h=499, wallet_age_days=0.1),
    ),
    "short_average_hold": (
        f(avg_hold_time_h=5, resales_30d=3),
        f(avg_hold_time_h=5, resales_30d=2),
    ),
}


def case_row(case: dict | None = None) -> tuple[dict, dict, frozenset, frozenset]:
    """(purchase, features, blocked wallets, blocked IPs) of ``case``."""
    case = case or {}
    return (
        {**CLEAN_PURCHASE, **case.get("p", {})},
        {**CLEAN_FEATURES, **case.get("f", {})},
        frozenset(case.get("bw", ())),
        frozenset(case.get("bi", ())),
    )


def case_batch(cases: list[dict]) -> RuleBatch:
    """One row per case; the blocklists are the union of the cases' (so with several cases,
    a case's blocked wallet or IP is blocked for every row that has it)."""
    rows = [case_row(c) for c in cases]
    wallets = frozenset().union(*(r[2] for r in rows))
    ips = frozenset().union(*(r[3] for r in rows))
    return RuleBatch.from_dicts([r[0] for r in rows], [r[1] for r in rows], wallets, ips)


def evaluate_cases(cases: list[dict], ruleset: RuleSet) -> list[Evaluation]:
    evaluation = evaluate_batch(case_batch(cases), ruleset)
    return [evaluation.row(i) for i in range(len(cases))]


def evaluate_case(case: dict | None, ruleset: RuleSet) -> Evaluation:
    return evaluate_cases([case or {}], ruleset)[0]


# Edge values for perturbing simulated rows towards every rule's thresholds and edge inputs.
NUMBERS = (-1.0, 0.0, 0.01, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 9.0, 10.0, 12.0, 20.0,
           29.9, 30.0, 60.0, 100.0, 500.0, 900.0, 1_000.0, 3_600.0, 10_000.0, 20_000.0,
           50_000.0, 86_400.0, 100_000.0, 200_000.0, 500_000.0, 1e7)  # fmt: skip
FIELDS = {
    "email_domain": (None, "", "x.mailinator.com", "Deals.XYZ", "xyz.de", ".mail.example.com.",
                     "a.b.guerrillamail.com", "notmailinator.com", "example.tk"),
    "user_agent": (None, "", "python-requests/2.31", "Mozilla/5.0 HeadlessChrome/120",
                   "Mozilla/5.0 (X11)", "Googlebot/2.1", "curl/8.0"),
    "ip": (None, "", "not-an-ip", "185.220.101.4", "3.5.1.1", "146.70.1.1", "10.0.0.1",
           "100.64.1.1", "192.0.0.170", "81.2.69.160", "2a00:1450:4001:80b::200e",
           "2001:DB8::1", "::ffff:10.0.0.1", "::ffff:8.8.8.8", "fe80::1", "010.1.1.1"),
    "card_country": (None, "", "us", "KP", "de", "IR"),
    "payment_method": ("CARD", "CRYPTO", "WALLET"),
    "channel": ("PRIMARY", "RESALE"),
}  # fmt: skip
GEOS = (None, {"lat": 0.0, "lon": 0.0, "country": "ir"}, {"lat": 52.5, "lon": 13.4, "country": "DE"},
        {"lat": 40.7, "lon": -74.0, "country": "US"})  # fmt: skip

# Overrides for some of the simulated organizers (a rule off, another re-weighted or with
# other parameters): rows are then seen through several views of one ruleset.
ORGANIZER_OVERRIDES = {
    "org_001": {"rules": {"quantity_over_limit": {"params": {"max_tickets": 2}},
                          "unverified_email": {"enabled": False}}},
    "org_002": {"rules": {"rapid_sequence": {"weight": 0.9, "params": {"min_gap_secs": 120.0}},
                          "high_velocity_1h": {"params": {"max_purchases": 2}}}},
    "org_003": {"rules": {"blocklisted_ip": {"enabled": False},
                          "bot_user_agent": {"params": {"patterns": ["mozilla"]}}}},
    "org_004": {"rules": {"new_wallet": {"weight": 0.0}}},
}  # fmt: skip


def overridden_ruleset() -> RuleSet:
    """The shipped rules with ``ORGANIZER_OVERRIDES``."""
    doc = tomllib.loads(DEFAULT_RULES_PATH.read_text())
    doc["organizers"].update(ORGANIZER_OVERRIDES)
    return ruleset_from_dict(doc)


def perturbed(rows: list[tuple[dict, dict]], seed: int) -> list[tuple[dict, dict]]:
    """Copies of ``rows`` with some fields and features set to edge values."""
    rng = np.random.default_rng(seed)
    out = []
    for purchase, features in rows:
        p, f = dict(purchase), dict(features)
        for name in f:
            if rng.random() < 0.12:
                f[name] = float(NUMBERS[rng.integers(len(NUMBERS))])
        for name, values in FIELDS.items():
            if rng.random() < 0.2:
                p[name] = values[rng.integers(len(values))]
        if rng.random() < 0.2:
            p["geo"] = copy.deepcopy(GEOS[rng.integers(len(GEOS))])
        if rng.random() < 0.1:
            p["seller_wallet"] = p["wallet"] if rng.random() < 0.5 else purchase.get("seller_wallet")
        out.append((p, f))
    return out


# Special values: where numpy and Python arithmetic part ways, or expressions raise.
SPECIAL = (math.nan, math.inf, -math.inf, -0.0, 0.0, -1.0, 1e308, 5.0)
TEXTS = (None, "", "X", "x.mailinator.com", "not-an-ip", "2001:db8::1", "185.220.101.4",
         "10.0.0.1", "HeadlessChrome")  # fmt: skip
RULES = {  # expressions where numpy and Python arithmetic part ways, or that raise
    "divide": ("velocity_1h / amount_vs_avg > 1", "min(1.0, velocity_1h / 10)",
               "{velocity_1h / amount_vs_avg:.3g}"),
    "subtract": ("velocity_1h - amount_vs_avg >= 0", "ramp(velocity_1h, amount_vs_avg)",
                 "{velocity_1h - amount_vs_avg!r} {abs(velocity_1h)!r}"),
    "multiply": ("velocity_1h * amount_vs_avg != 1", "velocity_1h * amount_vs_avg",
                 "{max(velocity_1h, amount_vs_avg, -1)}"),
    "choose": ("(1 / velocity_1h if velocity_1h > 0 else 2) > 0.1",
               "-velocity_1h if missing(velocity_1h) else 0.5", "{fmt(velocity_1h, '.2f')}"),
    "short_circuit": ("velocity_1h > 0 and 10 / velocity_1h > 1 or missing(amount_vs_avg)",
                      "1", "{missing(velocity_1h)!r} {velocity_1h!s}"),
    "chain": ("0 <= velocity_1h < amount_vs_avg <= 1e300", "0.0 - velocity_1h", "{velocity_1h}"),
    "texts": ("lower(user_agent) + upper(email_domain) != 'X' and not missing(card_country)",
              "1.0", "{lower(user_agent)!r} {tld(email_domain)} {domain(card_country)!r}"),
    "lists": ("ip in lists.tor_exit or ip not in lists.non_public and valid_ip(ip) "
              "or card_country in ('X', '') or wallet in blocked.wallets", "0.7",
              "{canonical_ip(ip)!r}"),
    "ranges": ("in_cidr(ip, lists.non_public) or domain_in(email_domain, lists.disposable_domains)",
               "0.9", "{find_any(user_agent, ('Headless',))!r}"),
    "bad_text": ("lower(ip) == 'x' or contains_any(email_domain, ('x',))", "0.3", "ok"),
}  # fmt: skip


def special_ruleset():
    rules = {name: {"category": "behavioral", "weight": 0.5, "when": when, "score": score,
                    "reason": reason} for name, (when, score, reason) in RULES.items()}  # fmt: skip
    return ruleset_from_dict({"version": "special", "rules": rules})


def special_rows() -> list[tuple[dict, dict]]:
    rows = []
    for i, (a, b) in enumerate((a, b) for a in SPECIAL for b in SPECIAL):
        text = TEXTS[i % len(TEXTS)]
        purchase = {**CLEAN_PURCHASE, "ip": text, "user_agent": TEXTS[(i + 3) % len(TEXTS)],
                    "email_domain": TEXTS[(i + 5) % len(TEXTS)], "card_country": text}  # fmt: skip
        rows.append((purchase, {**CLEAN_FEATURES, "velocity_1h": a, "amount_vs_avg": b}))
    rows.append(({**CLEAN_PURCHASE, "ip": 12345}, CLEAN_FEATURES))  # not a text: lower() raises
    return rows
