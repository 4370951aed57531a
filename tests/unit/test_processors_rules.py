"""The rules engine: every rule fires and stays quiet on hand-built contexts; the rules file
validates; organizer overrides, faulty-rule isolation, score combination, explanations."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import math
from pathlib import Path

import pytest

from processors.explain import reasons, top_contributions
from processors.features import FEATURE_NAMES
from processors.rules import (
    CATALOGUE,
    CATEGORIES,
    DEFAULT_RULES_PATH,
    RuleContext,
    RuleSet,
    RulesFileError,
    evaluate,
    evaluate_batch,
    load_ruleset,
)
from processors.rules.lists import IpRanges

pytestmark = pytest.mark.unit

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
}  # fmt: skip

CLEAN_PURCHASE = {
    "purchase_id": "p1", "wallet": A, "organizer_id": "org1", "show_id": "show1",
    "ticket_id": "0xee:1", "quantity": 2, "unit_price_minor": 5_000, "channel": "PRIMARY",
    "seller_wallet": None, "payment_method": "CARD", "card_fingerprint": "card1",
    "card_country": "DE", "email_domain": "example.com", "ip": CLEAN_IP,
    "geo": {"lat": 52.52, "lon": 13.405, "country": "DE"}, "device_id": "dev1",
    "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)",
}  # fmt: skip


def ctx(case: dict | None = None) -> RuleContext:
    case = case or {}
    return RuleContext(
        {**CLEAN_PURCHASE, **case.get("p", {})},
        {**CLEAN_FEATURES, **case.get("f", {})},
        blocked_wallets=case.get("bw", frozenset()),
        blocked_ips=case.get("bi", frozenset()),
    )


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


def test_catalogue_has_at_least_60_rules_covering_every_category():
    assert len(CATALOGUE) >= 60
    assert {r.category for r in CATALOGUE.values()} == set(CATEGORIES)
    assert all(r.description and 0 < r.weight <= 1 for r in CATALOGUE.values())
    assert {r.id for r in CATALOGUE.values() if r.hard} == {
        "blocklisted_wallet",
        "blocklisted_seller",
        "blocklisted_ip",
    }


def test_every_rule_has_a_firing_and_a_non_firing_case():
    assert set(CASES) == set(CATALOGUE)


def test_a_clean_purchase_fires_nothing():
    evaluation = evaluate(ctx(), RuleSet.default())
    assert (evaluation.results, evaluation.rule_score, evaluation.errors) == ([], 0.0, [])
    assert evaluation.hard_block is False


@pytest.mark.parametrize("rule_id", sorted(CATALOGUE))
def test_rule_fires(rule_id):
    rule = CATALOGUE[rule_id]
    result = rule.check(ctx(CASES[rule_id][0]))
    assert result is not None
    assert (result.rule_id, result.category, result.hard) == (rule_id, rule.category, rule.hard)
    assert 0 < result.score <= 1
    assert result.reason and result.reason[0] != "{"


@pytest.mark.parametrize("rule_id", sorted(CATALOGUE))
def test_rule_does_not_fire(rule_id):
    assert CATALOGUE[rule_id].check(ctx(CASES[rule_id][1])) is None


def test_reasons_carry_the_numbers():
    hit = CATALOGUE["high_velocity_1h"].check(ctx(f(velocity_1h=7)))
    assert hit.reason == "7 purchases by this wallet in the last hour (threshold 5)"
    assert hit.score == pytest.approx(0.5 + 0.5 * 2 / 5)
    ticket = CATALOGUE["quantity_over_limit"].check(ctx(f(show_tickets_7d=5, quantity=3)))
    assert ticket.reason == "8 tickets for show show1 (limit 6 per wallet)"


def test_wash_trading_fires_when_buying_back_a_sold_ticket():
    hit = CATALOGUE["wash_trading_cycle"].check(ctx(f(ticket_previously_held=1)))
    assert hit.reason == "buying back ticket 0xee:1 this wallet sold"


def test_shipped_rules_file_loads_and_lists_every_rule():
    ruleset = load_ruleset()
    assert ruleset.version and ruleset.thresholds.block == 0.85
    assert set(ruleset.settings) == set(CATALOGUE)
    text = DEFAULT_RULES_PATH.read_text()
    assert all(f"[rules.{rule_id}]" in text for rule_id in CATALOGUE)
    assert evaluate(ctx(), ruleset).results == []


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text('version = "t1"\n' + body)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[rules.new_acount]\nweight = 0.3\n",
         r"rules\.new_acount: unknown rule 'new_acount' \(did you mean 'new_account'\?\)"),
        ("[rules.new_account.params]\nmax_days = 2.0\n",
         r"rules\.new_account\.params\.max_days: rule 'new_account' has no parameter 'max_days'"),
        ('[rules.new_account.params]\nmax_age_days = "2"\n',
         r"rules\.new_account\.params\.max_age_days: expected float, got str"),
        ("[rules.new_account.params]\nmax_age_days = true\n",
         r"rules\.new_account\.params\.max_age_days: expected float, got bool"),
        ("[rules.quantity_over_limit.params]\nmax_tickets = 4.5\n",
         r"rules\.quantity_over_limit\.params\.max_tickets: expected int, got float"),
        ("[rules.high_risk_country.params]\ncountries = \"KP\"\n",
         r"rules\.high_risk_country\.params\.countries: expected a list, got str"),
        ("[rules.high_risk_country.params]\ncountries = [\"KP\", 3]\n",
         r"rules\.high_risk_country\.params\.countries\[1\]: expected str, got int"),
        ("[rules.new_account]\nweight = 1.5\n", r"rules\.new_account\.weight: expected a number"),
        ('[rules.new_account]\nenabled = "yes"\n', r"rules\.new_account\.enabled: expected bool"),
        ("[rules.new_account]\nwieght = 0.2\n", r"rules\.new_account: unknown key 'wieght'"),
        ("[policy]\nblock = 0.5\nreview = 0.6\n", r"policy: thresholds must satisfy"),
        ("[policy]\nblok = 0.9\n", r"policy: unknown key 'blok'"),
        ("[organizers.o1.rules.nope]\nenabled = false\n",
         r"organizers\.o1\.rules\.nope: unknown rule 'nope'"),
        ("[organizers.o1.policy]\nreview = \"high\"\n",
         r"organizers\.o1\.policy\.review: expected a number"),
        ("[organizers.o1]\nweights = 1\n", r"organizers\.o1: unknown key 'weights'"),
        ("[rules]\nnew_account = 3\n", r"rules\.new_account must be a table"),
        ("colour = 1\n", r"top level: unknown key 'colour'"),
    ],
)  # fmt: skip
def test_rules_file_errors_name_the_rule_and_parameter(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(RulesFileError, match=message) as err:
        load_ruleset(path)
    assert str(err.value).startswith(str(path))


def test_rules_file_without_version_or_with_bad_toml(tmp_path):
    bare = tmp_path / "bare.toml"
    bare.write_text("[policy]\nblock = 0.9\n")
    with pytest.raises(RulesFileError, match="'version' must be a non-empty string"):
        load_ruleset(bare)
    broken = tmp_path / "broken.toml"
    broken.write_text("version = \n")
    with pytest.raises(RulesFileError, match="invalid TOML"):
        load_ruleset(broken)
    with pytest.raises(RulesFileError, match="cannot read"):
        load_ruleset(tmp_path / "missing.toml")


def test_file_params_weights_and_enablement_apply(tmp_path):
    ruleset = load_ruleset(write(tmp_path, """
[rules.new_account]
weight = 0.5
params = { max_age_days = 2.0 }
[rules.unverified_phone]
enabled = false
"""))  # fmt: skip
    evaluation = evaluate(ctx(f(account_age_days=1.5, phone_verified=0)), ruleset)
    assert [r.rule_id for r in evaluation.results] == ["new_account"]
    assert evaluation.rule_score == pytest.approx(0.5)
    assert len(ruleset.active) == len(CATALOGUE) - 1


def test_organizer_overrides_params_weights_enablement_and_thresholds(tmp_path):
    ruleset = load_ruleset(write(tmp_path, """
[policy]
review = 0.7
[rules.quantity_over_limit]
weight = 0.6
[organizers.tour.policy]
block = 0.9
[organizers.tour.rules.quantity_over_limit]
weight = 0.9
params = { max_tickets = 4 }
[organizers.tour.rules.unverified_phone]
enabled = false
"""))  # fmt: skip
    case = ctx(f(show_tickets_7d=3, quantity=2, phone_verified=0))
    base = evaluate(case, ruleset)
    tour = evaluate(case, ruleset, organizer_id="tour")
    assert sorted(r.rule_id for r in base.results) == ["unverified_phone"]
    assert [r.rule_id for r in tour.results] == ["quantity_over_limit"]
    assert tour.rule_score == pytest.approx(0.9)
    tour_view = ruleset.for_organizer("tour")
    assert (tour_view.thresholds.block, tour_view.thresholds.review) == (0.9, 0.7)
    assert ruleset.for_organizer("someone-else") is ruleset
    assert ruleset.for_organizer(None) is ruleset
    assert evaluate(case, ruleset, organizer_id="unknown").results == base.results


def test_shipped_organizer_example():
    view = load_ruleset().for_organizer("org_stadium_tour")
    assert view.thresholds.review == 0.60
    assert view.settings["quantity_over_limit"].params["max_tickets"] == 4


def test_a_faulty_rule_is_isolated_logged_and_counted(monkeypatch, caplog):
    def boom(ctx, params):
        raise ZeroDivisionError("division by zero")

    broken = dataclasses.replace(CATALOGUE["new_account"], fn=boom)
    monkeypatch.setitem(CATALOGUE, "new_account", broken)
    with caplog.at_level(logging.WARNING, logger="processors.rules.engine"):
        evaluation = evaluate(ctx(f(account_age_days=0.1, velocity_1h=6)), RuleSet.default())
    assert evaluation.errors == ["new_account: ZeroDivisionError: division by zero"]
    assert "high_velocity_1h" in [r.rule_id for r in evaluation.results]
    assert "rule new_account failed" in caplog.text


def test_missing_features_are_isolated_errors_not_crashes():
    partial = RuleContext(CLEAN_PURCHASE, {"velocity_1h": 9.0})
    evaluation = evaluate(partial, RuleSet.default())
    assert [r.rule_id for r in evaluation.results] == ["high_velocity_1h"]
    assert evaluation.errors and all("KeyError" in e for e in evaluation.errors)


def test_rule_score_is_a_weighted_noisy_or_and_hard_rules_block():
    ruleset = RuleSet.default()
    one = evaluate(ctx(f(phone_verified=0)), ruleset)
    assert one.rule_score == pytest.approx(0.2)
    two = evaluate(ctx(f(phone_verified=0, email_verified=0)), ruleset)
    assert two.rule_score == pytest.approx(1 - (1 - 0.2) * (1 - 0.15))
    assert not two.hard_block
    blocked = evaluate(ctx({"bw": {A}}), ruleset)
    assert blocked.hard_block and blocked.rule_score == 1.0
    everything = evaluate(ctx(CASES["card_testing"][0] | {"bw": {A}, "bi": {CLEAN_IP}}), ruleset)
    assert 0.0 <= everything.rule_score <= 1.0


def test_evaluate_batch_matches_single_evaluation():
    ruleset = load_ruleset()
    ctxs = [ctx(CASES[rule_id][0]) for rule_id in sorted(CATALOGUE)]
    assert evaluate_batch(ctxs, ruleset) == [evaluate(c, ruleset) for c in ctxs]
    orgs = ["org_stadium_tour"] * len(ctxs)
    assert evaluate_batch(ctxs, ruleset, orgs) == [
        evaluate(c, ruleset, o) for c, o in zip(ctxs, orgs, strict=True)
    ]
    with pytest.raises(ValueError, match="organizer ids"):
        evaluate_batch(ctxs, ruleset, orgs[:1])


def test_ip_ranges_merge_and_match_v4_and_v6():
    ranges = IpRanges(["10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "2001:db8::/32"])
    assert len(ranges) == 2  # the v4 ranges merge into one
    assert ipaddress.ip_address("10.0.1.255") in ranges
    assert ipaddress.ip_address("10.0.2.0") not in ranges
    assert ipaddress.ip_address("9.255.255.255") not in ranges
    assert ipaddress.ip_address("2001:db8::1") in ranges
    assert ipaddress.ip_address("2001:db9::1") not in ranges


def test_top_contributions_drop_the_bias_and_rank_by_magnitude():
    contribs = [0.0] * len(FEATURE_NAMES) + [5.0]  # trailing bias
    contribs[FEATURE_NAMES.index("velocity_1h")] = 0.8
    contribs[FEATURE_NAMES.index("new_device")] = -1.2
    contribs[FEATURE_NAMES.index("quantity")] = 0.1
    assert top_contributions(contribs, k=2) == {"new_device": -1.2, "velocity_1h": 0.8}
    assert list(top_contributions(contribs)) == ["new_device", "velocity_1h", "quantity"]
    with pytest.raises(ValueError, match="contributions"):
        top_contributions([1.0, 2.0])


def test_reasons_match_the_decision_schema():
    evaluation = evaluate(ctx(CASES["card_testing"][0] | {"bw": {A}}), RuleSet.default())
    out = reasons(evaluation.results)
    schema = json.loads(Path("schemas/decision.avsc").read_text())
    reason_schema = next(x for x in schema["fields"] if x["name"] == "reasons")["type"]["items"]
    assert all(set(r) == {x["name"] for x in reason_schema["fields"]} for r in out)
    assert out[0] == {
        "code": "blocklisted_wallet",
        "category": "ticketing",
        "score": 1.0,
        "detail": f"wallet {A} is blocklisted",
    }
    assert [r["code"] for r in out[1:]] == ["card_testing"]
    assert reasons(evaluation.results, limit=1) == out[:1]
