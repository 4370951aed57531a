"""The SIEM correlation engine: list of events in, list of alerts out (bytewax style)."""

from __future__ import annotations

import pytest

from sinks.config import RULES_FILE
from sinks.siem.correlate import (
    Correlator,
    Event,
    Plan,
    alert_id,
    from_auth_event,
    from_security_event,
)
from sinks.siem.rules import RuleError, duration_ms, load_rules, parse_rules

pytestmark = pytest.mark.unit

MIN = 60_000
T = 1_800_000_000_000
RULES = {r.name: r for r in load_rules(RULES_FILE).rules}


def ev(n: int, kind: str, at: int, origin: str = "security", **fields: str) -> Event:
    return Event(f"e{n}", at, kind, fields, origin)


def failed_logins(times: list[int], ip: str = "203.0.113.9", start: int = 0) -> list[Event]:
    return [ev(start + i, "login_failed", T + t, ip=ip) for i, t in enumerate(times)]


def run(rule: str, events: list[Event]):
    return Correlator([RULES[rule]]).process(events)


def test_the_shipped_rules_file_has_the_four_rules():
    assert set(RULES) == {"brute_force", "fraud_ring", "ddos", "admin_mfa_failures"}
    brute = RULES["brute_force"]
    assert (brute.threshold, brute.timespan_ms, brute.group_by) == (5, 5 * MIN, (("ip",),))
    assert RULES["ddos"].value_field == "ip" and RULES["ddos"].threshold == 50
    assert RULES["fraud_ring"].group_by == (("details.cluster_id", "wallet"),)


def test_brute_force_fires_at_the_threshold_not_below():
    assert run("brute_force", failed_logins([0, 1, 2, 3])) == []
    [alert] = run("brute_force", failed_logins([0, 1, 2, 3, 4]))
    assert (alert.rule, alert.group_key, alert.count, alert.severity) == (
        "brute_force", "203.0.113.9", 5, "HIGH")
    assert (alert.first_seen_ms, alert.last_seen_ms) == (T, T + 4)
    assert alert.event_ids == ("e0", "e1", "e2", "e3", "e4")
    assert alert.plans == (Plan("block_ip", "203.0.113.9", 3_600_000), Plan("notify", None, None))
    assert alert.alert_id == alert_id("brute_force", "203.0.113.9", T)


def test_window_boundary_is_exclusive_at_exactly_the_timespan():
    just_inside = [0, MIN, 2 * MIN, 3 * MIN, 5 * MIN - 1]
    assert len(run("brute_force", failed_logins(just_inside))) == 1
    exactly_at = [0, MIN, 2 * MIN, 3 * MIN, 5 * MIN]  # the first has left the window
    assert run("brute_force", failed_logins(exactly_at)) == []


def test_window_expiry_forgets_old_events():
    times = [0, 1, 2, 3, 10 * MIN, 10 * MIN + 1, 10 * MIN + 2, 10 * MIN + 3]
    assert run("brute_force", failed_logins(times)) == []


def test_one_alert_per_group_per_window_then_a_new_window():
    c = Correlator([RULES["brute_force"]])
    first = c.process(failed_logins(list(range(0, 20 * 1000, 1000))))  # 20 in 20 s
    assert len(first) == 1
    assert c.process(failed_logins([4 * MIN + i for i in range(10)], start=100)) == []
    assert c.stats.absorbed == 15 + 10
    later = c.process(failed_logins([5 * MIN + i for i in range(5)], start=200))
    assert len(later) == 1
    assert later[0].first_seen_ms == T + 5 * MIN
    assert later[0].alert_id != first[0].alert_id


def test_groups_are_separate_and_missing_group_fields_do_not_match():
    events = failed_logins([0, 1, 2, 3], ip="198.51.100.1") + failed_logins(
        [5, 6, 7, 8], ip="198.51.100.2", start=10)
    events.append(ev(99, "login_failed", T + 9))  # no ip
    assert run("brute_force", events) == []


def test_a_redelivered_event_counts_once_and_order_does_not_matter():
    events = failed_logins([0, 1, 2, 3])
    assert run("brute_force", events + events) == []
    shuffled = failed_logins([4, 0, 3, 1, 2])
    [alert] = run("brute_force", shuffled)
    assert alert.first_seen_ms == T


def test_late_events_beyond_the_window_are_dropped():
    c = Correlator([RULES["brute_force"]])
    c.process(failed_logins([10 * MIN]))
    assert c.process(failed_logins([0, 1, 2, 3], start=10)) == []
    assert c.stats.late == 4


def test_auth_events_and_security_events_both_count_for_brute_force():
    auth = [
        from_auth_event({"event_id": f"a{i}", "occurred_at": T + i, "kind": "LOGIN_FAILED",
                         "user_id": "u1", "ip": "192.0.2.7", "wallet": None, "device_id": None})
        for i in range(3)
    ]
    security = [from_security_event({"event_id": f"a{i}", "occurred_at": T + 10 + i,
                                     "kind": "login_failed", "ip": "192.0.2.7", "details": {}})
                for i in range(2)]  # same ids as the auth events: separate id spaces
    [alert] = run("brute_force", auth + security)
    assert alert.count == 5


def test_fraud_ring_groups_by_cluster_else_wallet_and_blacklists_every_wallet():
    events = [
        ev(1, "fraud_detected", T, wallet="0xa", **{"details.cluster_id": "c1"}),
        ev(2, "fraud_detected", T + 10 * MIN, wallet="0xb", **{"details.cluster_id": "c1"}),
        ev(3, "fraud_detected", T + 20 * MIN, wallet="0xc"),
        ev(4, "fraud_detected", T + 59 * MIN, wallet="0xc", **{"details.cluster_id": "c1"}),
    ]
    [alert] = run("fraud_ring", events)
    assert alert.group_key == "c1"
    assert [p for p in alert.plans if p.action == "blacklist_wallet"] == [
        Plan("blacklist_wallet", w, 24 * 60 * MIN) for w in ("0xa", "0xb", "0xc")]
    # three for wallet 0xd alone, beyond 60 minutes: nothing
    alone = [ev(10 + i, "fraud_detected", T + i * 30 * MIN, wallet="0xd") for i in range(3)]
    assert run("fraud_ring", alone) == []


def limited(n: int, ip: str, limit: str = "ip", at: int = 0) -> Event:
    return ev(n, "rate_limit_exceeded", T + at, ip=ip, **{"details.limit": limit})


def test_ddos_counts_distinct_ips_not_events():
    same_ips = [limited(i, f"10.0.0.{i % 49}", at=i) for i in range(500)]
    assert run("ddos", same_ips) == []
    fifty = [limited(i, f"10.0.1.{i}", at=i * 1000) for i in range(50)]
    [alert] = run("ddos", fifty)
    assert (alert.group_key, alert.count) == ("*", 50)
    assert sum(p.action == "block_ip" for p in alert.plans) == 50


def test_ddos_counts_only_per_ip_limits_never_the_global_or_wallet_ones():
    """A busy on-sale hits the global (or a wallet) limit for many real buyers: those refusals
    say nothing about the buyers' IPs and must never block them."""
    for limit in ("global", "wallet"):
        busy = [limited(i, f"10.0.2.{i}", limit, at=i * 1000) for i in range(200)]
        assert run("ddos", busy) == []
    mixed = [limited(i, f"10.0.3.{i}", "ip" if i < 49 else "global", at=i) for i in range(60)]
    assert run("ddos", mixed) == []


def test_rule_filters_are_checked_when_the_rules_are_loaded():
    base = {"name": "r", "type": "event_count", "kinds": ["x"], "timespan": "5m",
            "condition": {"gte": 1}, "where": {"details.limit": "ip"}}  # fmt: skip
    rule = parse_rules({"rules": [base]}).rules[0]
    assert rule.where == (("details.limit", "ip"),)
    c = Correlator([rule])
    assert c.process([ev(1, "x", T, **{"details.limit": "global"})]) == []
    assert len(c.process([ev(2, "x", T, **{"details.limit": "ip"})])) == 1
    with pytest.raises(RuleError, match="'r'"):
        parse_rules({"rules": [{**base, "where": {"details.limit": 3}}]})


def test_every_automated_response_of_the_shipped_rules_expires():
    for rule in RULES.values():
        for response in rule.responses:
            assert response.action == "notify" or response.ttl_ms, (rule.name, response)


def test_a_permanent_automated_response_is_refused():
    base = {"name": "r", "type": "event_count", "kinds": ["x"], "timespan": "5m",
            "condition": {"gte": 2}}  # fmt: skip
    for action, target in (("block_ip", "ip"), ("blacklist_wallet", "wallet"),
                           ("lock_account", "user_id")):
        with pytest.raises(RuleError, match="ttl"):
            parse_rules({"rules": [{**base, "responses": [{"action": action, "target": target}]}]})


def test_admin_mfa_failures_lock_the_account():
    events = [ev(i, "admin_mfa_failed", T + i * MIN, user_id="admin-1") for i in range(3)]
    [alert] = run("admin_mfa_failures", events)
    assert Plan("lock_account", "admin-1", 3_600_000) in alert.plans
    too_slow = [ev(i, "admin_mfa_failed", T + i * 3 * MIN, user_id="admin-2") for i in range(3)]
    assert run("admin_mfa_failures", too_slow) == []


def test_idle_groups_are_swept():
    c = Correlator([RULES["brute_force"]])
    c.process(failed_logins([0, 1], ip="192.0.2.1"))
    assert c.open_windows == 1
    c.process(failed_logins([30 * MIN], ip="192.0.2.2", start=5))
    assert c.open_windows == 1


def test_same_input_gives_the_same_alerts():
    events = failed_logins(list(range(0, 30 * MIN, 20_000)))
    assert run("brute_force", events) == run("brute_force", list(reversed(events)))


def test_bad_rules_are_refused_with_the_rule_name():
    base = {"name": "r", "type": "event_count", "kinds": ["x"], "timespan": "5m",
            "condition": {"gte": 2}}
    assert parse_rules({"rules": [base]}).rules[0].threshold == 2
    for broken in ({"type": "sum"}, {"timespan": "5 minutes"}, {"condition": {}},
                   {"type": "value_count"}, {"responses": [{"action": "block_ip"}]},
                   {"responses": [{"action": "reboot"}]}):
        with pytest.raises(RuleError, match="'r'"):
            parse_rules({"rules": [{**base, **broken}]})
    assert duration_ms("90s") == 90_000 and duration_ms("1h") == 3_600_000


def test_a_future_dated_event_cannot_make_an_ips_real_events_late():
    """One auth event dated 23 h ahead (ingested now) used to push the group's window so far
    that 49 real failed logins were 'late' and brute force never fired."""
    ip = "203.0.113.66"
    c = Correlator([RULES["brute_force"]])
    outlier = Event("x", T + 23 * 60 * MIN, "login_failed", {"ip": ip}, "auth", ingested_ms=T)
    assert c.process([outlier]) == []
    real = [Event(f"e{i}", T + i * 1000, "login_failed", {"ip": ip}, "auth", ingested_ms=T + i)
            for i in range(1, 50)]  # fmt: skip
    [alert] = c.process(real)
    assert (alert.rule, alert.group_key) == ("brute_force", ip)
    assert alert.last_seen_ms <= T + 5 * MIN  # the outlier counts at its ingest time + skew
    assert c.stats.late == 0


def test_records_carry_their_ingest_time_into_events():
    record = {"event_id": "s1", "occurred_at": T + 60 * MIN, "kind": "login_failed",
              "ip": "192.0.2.1", "details": {}}  # fmt: skip
    assert from_security_event(record, ingested_ms=T).ingested_ms == T
    c = Correlator([RULES["brute_force"]], max_future_skew_ms=0)
    c.process([from_security_event(record, ingested_ms=T)])
    c.process(failed_logins([1, 2, 3, 4], ip="192.0.2.1"))
    assert c.stats.late == 0


def test_a_restarted_correlator_told_of_a_published_alert_does_not_alert_its_tail_again():
    """Before a restart: 5 failed logins at 0..4 min fired [0, 4 min]. The restart reads
    events again only from 3 min on (its rewind is by record time), then 2 more arrive."""
    again = failed_logins([3 * MIN, 4 * MIN, 4 * MIN + 1, 4 * MIN + 2, 4 * MIN + 3], start=3)
    forgetful = Correlator([RULES["brute_force"]])
    [duplicate] = forgetful.process(again)  # the same incident alerted a second time
    assert duplicate.first_seen_ms == T + 3 * MIN
    restarted = Correlator([RULES["brute_force"]])
    restarted.quiet("brute_force", "203.0.113.9", T)  # what the alerts topic says
    assert restarted.process(again) == []
    assert restarted.stats.absorbed == 5
    later = failed_logins([5 * MIN + i for i in range(5)], start=20)  # a new window
    [alert] = restarted.process(later)
    assert alert.first_seen_ms == T + 5 * MIN
