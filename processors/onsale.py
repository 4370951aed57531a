"""On-sale windows: crowd rules step up to 2FA instead of filling the review queue.

When a popular sale opens, crowds of real buyers look alike: new accounts and wallets, many of
them behind one campus, venue or carrier address. Rules about account freshness and shared
addresses fire for all of them at once, and a review queue of hundreds of cases in ten minutes
helps nobody. Within ``WINDOW_SECS`` of the show's sale opening, a purchase that would go to
MANUAL_REVIEW only because of such crowd rules (every rule that fired is in ``CROWD_RULES``)
and whose model score alone is under the review threshold gets REQUIRE_2FA instead: the buyer
proves themselves in seconds, a bot does not. Anything else (a bot agent, card testing, the
model's own conviction, a hard rule) keeps its verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from processors.policy import Thresholds, Verdict

WINDOW_SECS = 2 * 3600.0
CROWD_RULES = frozenset({
    "new_account",
    "new_wallet",
    "new_wallet_and_account",
    "fresh_unverified_identity",
    "unverified_phone",
    "unverified_email",
    "missing_account_age",
    "same_ip_many_wallets",
    "linked_wallet_cluster",
    "hot_show_new_wallet",
})


def in_onsale_window(features: Mapping[str, float]) -> bool:
    since_open = features.get("secs_since_sale_open", -1.0)
    return features.get("before_sale_open", 0.0) == 0.0 and 0.0 <= since_open <= WINDOW_SECS


def step_up(verdict: Verdict, model_score: float, fired: Iterable[str],
            features: Mapping[str, float], thresholds: Thresholds) -> Verdict:
    """REQUIRE_2FA for a crowd-only MANUAL_REVIEW inside the on-sale window; else ``verdict``."""
    if verdict != Verdict.MANUAL_REVIEW or model_score > thresholds.review:
        return verdict
    if not in_onsale_window(features):
        return verdict
    rules = set(fired)
    return Verdict.REQUIRE_2FA if rules and rules <= CROWD_RULES else verdict
