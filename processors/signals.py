"""The features' shared conventions and the windows of the wallet's auth and token features.

Where each feature is computed (``FEATURE_NAMES`` in ``processors.compute``):

- the wallet's purchase history and diversity, its age and the account's, geo velocity,
  account takeover, tokens and resale, and the order's own values: ``WalletFeatures.row`` in
  ``processors/native/src/wallet.rs``, from the ``WalletState`` before the purchase (built
  by ``processors.compute.wallet_features``);
- the shared entities and the show, and ``mint_to_resale_min``: the ``EntityStore``
  (``processors/native/src/lib.rs``, ``processors.entity_state``), read by the same call;
- the crowds: ``processors.crowd``; confirmed fraud: ``processors.marks``.

Same conventions as ``processors.compute`` (half-open event-time windows, ``MISSING``).
"""

from __future__ import annotations

from processors.timeutil import DAY_MS

MISSING = -1.0
DEVICE_MEMORY_MS = 90 * DAY_MS  # a device unseen this long is new again
TOKEN_WINDOW_MS = 30 * DAY_MS  # resales and wash cycles counted over this window


def flag(value: object) -> float:
    return 1.0 if value else 0.0
