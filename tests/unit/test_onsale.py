from __future__ import annotations

import pytest

from processors.onsale import step_up
from processors.policy import Thresholds, Verdict

pytestmark = pytest.mark.unit

T = Thresholds()
OPEN_5_MIN = {"secs_since_sale_open": 300.0, "before_sale_open": 0.0}
LATER = {"secs_since_sale_open": 3 * 86_400.0, "before_sale_open": 0.0}


def test_crowd_only_review_in_the_window_steps_up_to_2fa():
    fired = ["new_account", "same_ip_many_wallets"]
    assert step_up(Verdict.MANUAL_REVIEW, 0.2, fired, OPEN_5_MIN, T) == Verdict.REQUIRE_2FA


@pytest.mark.parametrize(
    ("verdict", "model", "fired", "features"),
    [
        (Verdict.MANUAL_REVIEW, 0.2, ["new_account"], LATER),  # outside the window
        (Verdict.MANUAL_REVIEW, 0.2, ["new_account", "bot_user_agent"], OPEN_5_MIN),
        (Verdict.MANUAL_REVIEW, 0.7, ["new_account"], OPEN_5_MIN),  # the model is convinced
        (Verdict.BLOCKED, 0.2, ["new_account"], OPEN_5_MIN),
        (Verdict.MANUAL_REVIEW, 0.2, [], OPEN_5_MIN),
        (Verdict.MANUAL_REVIEW, 0.2, ["new_account"],
         {"secs_since_sale_open": 0.0, "before_sale_open": 1.0}),  # bought before it opened
    ],
)
def test_everything_else_keeps_its_verdict(verdict, model, fired, features):
    assert step_up(verdict, model, fired, features, T) == verdict
