"""The rules engine: every rule of the shipped file fires and stays quiet on hand-built
purchases; the rules file validates; organizer overrides, faulty-rule isolation, score
combination, batches, explanations."""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import random
import tomllib
from pathlib import Path

import numpy as np
import pytest

from processors.explain import reasons, top_contributions
from processors.features import FEATURE_NAMES
from processors.rules import (
    CATEGORIES,
    DEFAULT_RULES_PATH,
    RuleBatch,
    RuleResult,
    RuleSet,
    RulesFileError,
    default_lists,
    evaluate_batch,
    load_ruleset,
    ruleset_from_dict,
)
from processors.rules.lists import IpRanges
from tests.support.rule_cases import (
    CASES,
    CLEAN_FEATURES,
    CLEAN_IP,
    CLEAN_PURCHASE,
    A,
    evaluate_case,
    evaluate_cases,
    f,
)

pytestmark = pytest.mark.unit

SHIPPED = load_ruleset()
SHIPPED_DOC = tomllib.loads(DEFAULT_RULES_PATH.read_text())


def result(rule_id: str, case: dict):
    """The rule's result for ``case`` under the shipped rules (None: it did not fire)."""
    hits = [r for r in evaluate_case(case, SHIPPED).results if r.rule_id == rule_id]
    return hits[0] if hits else None


def test_the_shipped_file_has_74_rules_covering_every_category():
    rules = SHIPPED.rules
    assert len(rules) == 76 and len(SHIPPED.active) == 76
    assert {r.category for r in rules.values()} == set(CATEGORIES)
    assert all(r.description and 0 < SHIPPED.settings[i].weight <= 1 for i, r in rules.items())
    assert {r.id for r in rules.values() if r.hard} == {
        "blocklisted_wallet",
        "blocklisted_seller",
        "blocklisted_ip",
    }


def test_every_rule_has_a_firing_and_a_non_firing_case():
    assert set(CASES) == set(SHIPPED.rules)


def test_a_clean_purchase_fires_nothing():
    evaluation = evaluate_case({}, SHIPPED)
    assert (evaluation.results, evaluation.rule_score, evaluation.errors) == ([], 0.0, [])
    assert evaluation.hard_block is False


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires(rule_id):
    rule = SHIPPED.rules[rule_id]
    hit = result(rule_id, CASES[rule_id][0])
    assert hit is not None
    assert (hit.rule_id, hit.category, hit.hard) == (rule_id, rule.category, rule.hard)
    assert 0 < hit.score <= 1
    assert hit.reason and "{" not in hit.reason


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_does_not_fire(rule_id):
    assert result(rule_id, CASES[rule_id][1]) is None


def test_one_batch_of_every_case_gives_each_row_its_own_outcome():
    """Rows of one batch do not leak into each other: the same outcome as row by row."""
    cases = [c for pair in CASES.values() for c in pair if "bw" not in c and "bi" not in c]
    together = evaluate_cases(cases, SHIPPED)
    assert together == [evaluate_case(c, SHIPPED) for c in cases]
    fired = {r.rule_id for e in together for r in e.results}
    assert len(fired) >= 70


def test_reasons_carry_the_numbers():
    hit = result("high_velocity_1h", f(velocity_1h=7))
    assert hit.reason == "7 purchases by this wallet in the last hour (threshold 5)"
    assert hit.score == pytest.approx(0.5 + 0.5 * 2 / 5)
    ticket = result("quantity_over_limit", f(show_tickets_7d=5, quantity=3))
    assert ticket.reason == "8 tickets for show show1 (limit 6 per wallet)"
    wallet = result("new_wallet", f(wallet_age_days=0.25, account_age_days=-1))
    assert wallet.reason == "wallet first seen 6.0 h ago, account age unknown"
    wallet = result("new_wallet", f(wallet_age_days=0.25, account_age_days=3))
    assert wallet.reason == "wallet first seen 6.0 h ago, account 3 d old"


def test_wash_trading_reason_depends_on_which_signal_fired():
    back = result("wash_trading_cycle", f(ticket_previously_held=1))
    assert back.reason == "buying back ticket 0xee:1 this wallet sold"
    cycles = result("wash_trading_cycle", f(wash_cycles_30d=2))
    assert cycles.reason == "2 tickets returned to this wallet after it sold them (30 d)"


def test_shipped_rules_file_loads_and_defines_every_rule():
    assert SHIPPED.version and SHIPPED.thresholds.block == 0.85
    text = DEFAULT_RULES_PATH.read_text()
    assert all(f"[rules.{rule_id}]" in text for rule_id in SHIPPED.rules)
    assert evaluate_case({}, SHIPPED).results == []
    assert RuleSet.default().version == "builtin" and not RuleSet.default().organizers


def with_changes(**tables) -> dict:
    """The shipped rules file as a dict, with top-level tables replaced or rules changed."""
    doc = copy.deepcopy(SHIPPED_DOC)
    for name, value in tables.items():
        if name in doc["rules"]:
            doc["rules"][name].update(value)
        else:
            doc[name] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (with_changes(organizers={"o1": {"rules": {"new_acount": {"weight": 0.3}}}}),
         r"organizers\.o1\.rules\.new_acount: unknown rule 'new_acount' "
         r"\(did you mean 'new_account'\?\)"),
        (with_changes(organizers={"o1": {"rules": {"new_account": {"params": {"max_days": 2.0}}}}}),
         r"organizers\.o1\.rules\.new_account\.params\.max_days: rule 'new_account' has no "
         r"parameter 'max_days'"),
        (with_changes(organizers={"o1": {"rules": {"new_account": {"params": {"max_age_days": "2"}}}}}),
         r"organizers\.o1\.rules\.new_account\.params\.max_age_days: expected float, got str"),
        (with_changes(organizers={"o1": {"rules": {"new_account": {"params": {"max_age_days": True}}}}}),
         r"organizers\.o1\.rules\.new_account\.params\.max_age_days: expected float, got bool"),
        (with_changes(organizers={"o1": {"rules": {"quantity_over_limit": {"params": {"max_tickets": 4.5}}}}}),
         r"\.quantity_over_limit\.params\.max_tickets: expected int, got float"),
        (with_changes(organizers={"o1": {"rules": {"high_risk_country": {"params": {"countries": "KP"}}}}}),
         r"\.high_risk_country\.params\.countries: expected a list, got str"),
        (with_changes(organizers={"o1": {"rules": {"high_risk_country": {"params": {"countries": ["KP", 3]}}}}}),
         r"\.high_risk_country\.params\.countries\[1\]: expected str, got int"),
        (with_changes(new_account={"weight": 1.5}), r"rules\.new_account\.weight: expected a number"),
        (with_changes(new_account={"enabled": "yes"}), r"rules\.new_account\.enabled: expected bool"),
        (with_changes(new_account={"wieght": 0.2}), r"rules\.new_account: unknown key 'wieght'"),
        (with_changes(new_account={"category": "misc"}), r"rules\.new_account\.category: 'misc' is not one of"),
        (with_changes(new_account={"hard": "no"}), r"rules\.new_account\.hard: expected bool"),
        (with_changes(new_account={"when": 3}), r"rules\.new_account\.when: expected a text, got int"),
        (with_changes(new_account={"params": {"max_age_days": {"a": 1}}}),
         r"rules\.new_account\.params\.max_age_days: expected a number, bool, text or list"),
        (with_changes(new_account={"params": {}}),
         r"rules\.new_account\.when: line 1, column 25: no parameter 'max_age_days'"),
        (with_changes(policy={"block": 0.5, "review": 0.6}), r"policy: thresholds must satisfy"),
        (with_changes(policy={"blok": 0.9}), r"policy: unknown key 'blok'"),
        (with_changes(organizers={"o1": {"policy": {"review": "high"}}}),
         r"organizers\.o1\.policy\.review: expected a number"),
        (with_changes(organizers={"o1": {"weights": 1}}), r"organizers\.o1: unknown key 'weights'"),
        (with_changes(rules={"new_account": 3}), r"rules\.new_account must be a table"),
        (with_changes(colour=1), r"top level: unknown key 'colour'"),
    ],
)  # fmt: skip
def test_rules_file_errors_name_the_rule_and_parameter(doc, message):
    with pytest.raises(RulesFileError, match=message) as err:
        ruleset_from_dict(doc, source="candidate.toml")
    assert str(err.value).startswith("candidate.toml: ")


def test_a_rule_missing_a_required_key_is_named():
    doc = with_changes()
    del doc["rules"]["new_account"]["when"]
    with pytest.raises(RulesFileError, match=r"rules\.new_account: missing 'when'"):
        ruleset_from_dict(doc)


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


def test_file_params_weights_and_enablement_apply():
    ruleset = ruleset_from_dict(with_changes(
        new_account={"weight": 0.5, "params": {"max_age_days": 2.0}},
        unverified_phone={"enabled": False},
    ))  # fmt: skip
    evaluation = evaluate_case(f(account_age_days=1.5, phone_verified=0), ruleset)
    assert [r.rule_id for r in evaluation.results] == ["new_account"]
    assert evaluation.rule_score == pytest.approx(0.5)
    assert len(ruleset.active) == len(ruleset.rules) - 1


def test_a_new_rule_is_data_only():
    """An analyst adds a rule in the file; no code changes."""
    doc = with_changes()
    doc["rules"]["crypto_bulk"] = {
        "category": "transaction", "weight": 0.4, "params": {"min_quantity": 4},
        "when": "payment_method == 'CRYPTO' and quantity >= p.min_quantity",
        "score": "min(1.0, quantity / (2 * p.min_quantity))",
        "reason": "{quantity:g} tickets paid in crypto (limit {p.min_quantity})",
    }  # fmt: skip
    evaluation = evaluate_case({"p": {"payment_method": "CRYPTO"}, "f": {"quantity": 6}},
                               ruleset_from_dict(doc))  # fmt: skip
    [hit] = [r for r in evaluation.results if r.rule_id == "crypto_bulk"]
    assert (hit.score, hit.reason) == (0.75, "6 tickets paid in crypto (limit 4)")


def test_organizer_overrides_params_weights_enablement_and_thresholds():
    ruleset = ruleset_from_dict(with_changes(
        policy={"review": 0.7},
        quantity_over_limit={"weight": 0.6},
        organizers={"tour": {
            "policy": {"block": 0.9},
            "rules": {"quantity_over_limit": {"weight": 0.9, "params": {"max_tickets": 4}},
                      "unverified_phone": {"enabled": False}},
        }},
    ))  # fmt: skip
    case = {"f": {"show_tickets_7d": 3, "quantity": 2, "phone_verified": 0}}
    base = evaluate_case(case, ruleset)
    tour = evaluate_case({**case, "p": {"organizer_id": "tour"}}, ruleset)
    assert sorted(r.rule_id for r in base.results) == ["unverified_phone"]
    assert [r.rule_id for r in tour.results] == ["quantity_over_limit"]
    assert tour.results[0].reason == "5 tickets for show show1 (limit 4 per wallet)"
    assert tour.rule_score == pytest.approx(0.9)
    tour_view = ruleset.for_organizer("tour")
    assert (tour_view.thresholds.block, tour_view.thresholds.review) == (0.9, 0.7)
    assert ruleset.for_organizer("someone-else") is ruleset
    assert ruleset.for_organizer(None) is ruleset
    unknown = evaluate_case({**case, "p": {"organizer_id": "unknown"}}, ruleset)
    assert unknown.results == base.results


def test_organizers_rows_mixed_in_one_batch_each_get_their_view():
    ruleset = ruleset_from_dict(with_changes(organizers={"tour": {"rules": {
        "quantity_over_limit": {"params": {"max_tickets": 4}}}}}))  # fmt: skip
    case = {"f": {"show_tickets_7d": 3, "quantity": 2}}
    orgs = ["org1", "tour", "org1", "tour", "tour"]
    out = evaluate_cases([{**case, "p": {"organizer_id": o}} for o in orgs], ruleset)
    assert [bool(e.results) for e in out] == [o == "tour" for o in orgs]


def test_a_batch_with_no_row_under_an_overriding_organizer_is_seen_through_the_ruleset():
    """A batch whose organizers override nothing is one view, the ruleset itself (one set
    test, no view looked up per row); a row under an organizer with overrides makes it one
    group of rows per view."""
    from processors.rules.engine import _views
    from tests.support.rule_cases import case_batch

    ruleset = ruleset_from_dict(with_changes(organizers={"tour": {"rules": {
        "quantity_over_limit": {"params": {"max_tickets": 4}}}}}))  # fmt: skip

    def batch(orgs: list[str | None]) -> RuleBatch:
        return case_batch([{"p": {"organizer_id": o}} for o in orgs])

    assert _views(batch(["org1", None, "org2"]), ruleset) is ruleset
    views = _views(batch(["org1", "tour", None, "tour"]), ruleset)
    assert isinstance(views, list)
    assert [(view.organizer_id, rows) for view, rows in views] == [
        (None, [0, 2]), ("tour", [1, 3])]  # fmt: skip


def test_an_organizer_overriding_only_a_weight_shares_the_rules_pass_with_its_own_weight():
    ruleset = ruleset_from_dict(with_changes(organizers={
        "heavy": {"rules": {"unverified_phone": {"weight": 0.9}}},
        "off": {"rules": {"unverified_phone": {"enabled": False}}},
    }))  # fmt: skip
    assert (ruleset.for_organizer("heavy").active_by_id["unverified_phone"].compiled
            is ruleset.active_by_id["unverified_phone"].compiled)  # fmt: skip
    orgs = ["heavy", "org1", "off", "heavy"]
    out = evaluate_cases([{"f": {"phone_verified": 0}, "p": {"organizer_id": o}} for o in orgs],
                         ruleset)  # fmt: skip
    shipped = ruleset.settings["unverified_phone"].weight  # the rules file's own weight
    assert [e.rule_score for e in out] == pytest.approx([0.9, shipped, 0.0, 0.9])
    assert [len(e.results) for e in out] == [1, 1, 0, 1]


def test_shipped_organizer_example():
    view = SHIPPED.for_organizer("org_stadium_tour")
    assert view.thresholds.review == 0.60
    assert view.settings["quantity_over_limit"].params["max_tickets"] == 4


def test_a_rule_that_raises_on_some_rows_is_isolated_to_those_rows(caplog):
    doc = with_changes()
    doc["rules"]["inverse_velocity"] = {
        "category": "behavioral", "weight": 0.5, "when": "1 / velocity_1h < 0.3",
        "reason": "{1 / velocity_1h:.2f}"}  # fmt: skip
    ruleset = ruleset_from_dict(doc)
    cases = [f(velocity_1h=0, phone_verified=0), f(velocity_1h=5), f(velocity_1h=2)]
    with caplog.at_level(logging.WARNING, logger="processors.rules.engine"):
        zero, five, two = evaluate_cases(cases, ruleset)
    assert zero.errors == ["inverse_velocity: FloatingPointError: divide by zero encountered "
                           "in divide"]  # fmt: skip
    assert [r.rule_id for r in zero.results] == ["unverified_phone"]  # other rules still ran
    assert [(r.rule_id, r.reason) for r in five.results] == [
        ("high_velocity_1h", "5 purchases by this wallet in the last hour (threshold 5)"),
        ("inverse_velocity", "0.20")]  # fmt: skip
    assert (two.results, two.errors) == ([], [])
    assert "rule inverse_velocity failed" in caplog.text


def test_a_guard_protects_its_row_as_in_python_and_scores_are_computed_where_fired():
    """``x > 0 and 1 / x < 0.3`` raises for no row (each row short-circuits as in Python,
    though the batch as a whole had a zero), and a score is only computed where the rule
    fired."""
    doc = with_changes()
    doc["rules"]["guarded"] = {"category": "behavioral", "weight": 0.5, "reason": "g",
                               "when": "velocity_1h > 0 and 1 / velocity_1h < 0.3"}
    doc["rules"]["scored"] = {"category": "behavioral", "weight": 0.5, "reason": "s",
                              "when": "velocity_1h > 0", "score": "1 / velocity_1h"}  # fmt: skip
    zero, five = evaluate_cases([f(velocity_1h=0), f(velocity_1h=5)], ruleset_from_dict(doc))
    assert (zero.errors, zero.results) == ([], [])
    assert [(r.rule_id, r.score) for r in five.results if r.rule_id in ("guarded", "scored")] == [
        ("guarded", 1.0), ("scored", 0.2)]  # fmt: skip
    assert five.errors == []


def test_a_batch_refuses_features_that_are_missing_or_misshapen():
    with pytest.raises(ValueError, match="record 0: feature 'velocity_24h' is missing"):
        RuleBatch.from_dicts([CLEAN_PURCHASE], [{"velocity_1h": 9.0}])
    with pytest.raises(ValueError, match=r"features must be 1 x \d+"):
        RuleBatch([CLEAN_PURCHASE], np.zeros((1, 3)))


def test_rule_score_is_a_weighted_noisy_or_and_hard_rules_block():
    phone = SHIPPED.settings["unverified_phone"].weight
    email = SHIPPED.settings["unverified_email"].weight
    one = evaluate_case(f(phone_verified=0), SHIPPED)
    assert one.rule_score == pytest.approx(phone)
    two = evaluate_case(f(phone_verified=0, email_verified=0), SHIPPED)
    assert two.rule_score == pytest.approx(1 - (1 - phone) * (1 - email))
    assert not two.hard_block
    blocked = evaluate_case({"bw": {A}}, SHIPPED)
    assert blocked.hard_block and blocked.rule_score == 1.0
    everything = evaluate_case(CASES["card_testing"][0] | {"bw": {A}, "bi": {CLEAN_IP}}, SHIPPED)
    assert 0.0 <= everything.rule_score <= 1.0


def test_scores_are_clamped_to_zero_and_one():
    doc = with_changes()
    for rule_id, score in (("huge", "velocity_1h * 10"), ("negative", "-velocity_1h")):
        doc["rules"][rule_id] = {"category": "behavioral", "weight": 0.5, "score": score,
                                 "when": "velocity_1h > 0", "reason": "x"}  # fmt: skip
    evaluation = evaluate_case(f(velocity_1h=1), ruleset_from_dict(doc))
    scores = {r.rule_id: r.score for r in evaluation.results}
    assert (scores["huge"], scores["negative"]) == (1.0, 0.0)
    assert evaluation.rule_score == pytest.approx(0.5)


def test_empty_batch():
    evaluation = evaluate_batch(RuleBatch([], np.zeros((0, len(FEATURE_NAMES)))), SHIPPED)
    assert len(evaluation) == 0 and evaluation.rule_score.shape == (0,)


def test_ip_ranges_merge_and_match_v4_and_v6():
    ranges = IpRanges(["10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "2001:db8::/32"])
    assert len(ranges) == 2  # the v4 ranges merge into one
    assert ipaddress.ip_address("10.0.1.255") in ranges
    assert ipaddress.ip_address("10.0.2.0") not in ranges
    assert ipaddress.ip_address("9.255.255.255") not in ranges
    assert ipaddress.ip_address("2001:db8::1") in ranges
    assert ipaddress.ip_address("2001:db9::1") not in ranges
    column = np.array([int(ipaddress.ip_address(a)) for a in
                       ("10.0.1.255", "10.0.2.0", "9.255.255.255", "10.0.0.0")], np.uint64)  # fmt: skip
    assert ranges.contains_v4(column).tolist() == [True, False, False, True]


def test_a_list_asked_for_as_ip_ranges_must_be_one():
    lists = default_lists()
    assert lists.ranges("non_public") is lists["non_public"]
    with pytest.raises(TypeError, match="'disposable_domains' holds texts"):
        lists.ranges("disposable_domains")


def test_the_non_public_list_is_pythons_is_global():
    """``lists.non_public`` (rule non_public_ip) agrees with ``ipaddress``'s ``is_global`` at
    every range edge and on random addresses, IPv4, IPv6 and IPv4-mapped IPv6."""
    ranges = default_lists()["non_public"]
    rng = random.Random(11)
    probes = [ipaddress.ip_address(rng.getrandbits(32)) for _ in range(20_000)]
    probes += [ipaddress.IPv6Address(rng.getrandbits(128)) for _ in range(2_000)]
    probes += [ipaddress.IPv6Address(f"::ffff:{a}") for a in probes[:2_000]]
    for line in (Path(DEFAULT_RULES_PATH).parent / "data/non_public_cidrs.txt").read_text().splitlines():
        cidr = line.split("#")[0].strip()
        if cidr:
            net = ipaddress.ip_network(cidr)
            edges = (int(net.network_address) - 1, int(net.broadcast_address) + 1)
            probes += [net.network_address, net.broadcast_address]
            probes += [ipaddress.ip_address(e) if net.version == 4 else ipaddress.IPv6Address(e)
                       for e in edges if 0 <= e < 2 ** net.max_prefixlen]  # fmt: skip
    assert [a for a in probes if (a in ranges) == a.is_global] == []


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
    evaluation = evaluate_case(CASES["card_testing"][0] | {"bw": {A}}, SHIPPED)
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


def test_reasons_are_hard_first_then_by_score_then_by_rule_id():
    rng = random.Random(5)
    for _ in range(300):
        ids = rng.sample([f"rule_{i:02d}" for i in range(40)], rng.randint(0, 12))
        results = [RuleResult(rule_id, "behavioral", rng.choice([0.0, -0.0, 0.25, 0.5, 1.0]),
                              f"because {rule_id}", rng.random() < 0.2) for rule_id in ids]
        ranked = sorted(results, key=lambda r: (not r.hard, -r.score, r.rule_id))
        want = [{"code": r.rule_id, "category": r.category, "score": r.score,
                 "detail": r.reason} for r in ranked]  # fmt: skip
        assert reasons(results) == want
        assert reasons(iter(results), limit=3) == want[:3]
        got = [r["score"] for r in reasons(results)]
        assert [str(x) for x in got] == [str(r.score) for r in ranked]  # -0.0 stays in place


def test_clean_features_cover_every_feature():
    assert set(CLEAN_FEATURES) == set(FEATURE_NAMES)
