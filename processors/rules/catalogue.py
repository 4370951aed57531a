"""Importing the rule modules registers every rule in ``base.CATALOGUE``."""

from __future__ import annotations

from processors.rules.base import CATALOGUE, Rule


def load_catalogue() -> dict[str, Rule]:
    """The full catalogue (imports the rule modules once)."""
    from processors.rules import (  # noqa: F401
        account_takeover,
        behavioral,
        identity,
        network,
        ticketing,
        transaction,
    )

    return CATALOGUE
