"""A scripted day of traffic with a known ending: a scalper bot's burst at sale open, an
impossible trip, an account takeover, a blocklisted wallet and a clean buyer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 2, 18, 0, tzinfo=UTC)
BERLIN = {"lat": 52.52, "lon": 13.405, "country": "DE"}
NEW_YORK = {"lat": 40.71, "lon": -74.01, "country": "US"}
CLEAN, BOT, TRAVELLER, VICTIM, BANNED = (f"0x{n:040x}" for n in (0xC1, 0xB0, 0x7A, 0xA7, 0xBA))
BANNED_IP = "198.51.100.66"


def _purchase(pid: str, wallet: str, at: datetime, **over) -> dict:
    record = {
        "purchase_id": pid, "occurred_at": at, "wallet": wallet, "user_id": f"user-{wallet[-2:]}",
        "organizer_id": "org-1", "show_id": "show-42", "ticket_id": f"ticket-{pid}",
        "quantity": 2, "unit_price_minor": 8_500, "currency": "EUR", "channel": "PRIMARY",
        "seller_wallet": None, "payment_method": "CARD", "card_fingerprint": f"card-{wallet[-2:]}",
        "card_country": "DE", "email_domain": "example.org", "ip": "81.2.69.160", "geo": BERLIN,
        "device_id": f"dev-{wallet[-2:]}", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "account_created_at": at - timedelta(days=400), "sale_opens_at": None,
        "mfa_enabled": True, "phone_verified": True, "email_verified": True, "ingested_at": None,
    }  # fmt: skip
    record.update(over)
    return record


def _auth(eid: str, wallet: str, at: datetime, kind: str, **over) -> dict:
    record = {"event_id": eid, "occurred_at": at, "kind": kind, "user_id": f"user-{wallet[-2:]}",
              "wallet": wallet, "ip": "81.2.69.160", "geo": BERLIN, "device_id": f"dev-{wallet[-2:]}",
              "user_agent": None}  # fmt: skip
    record.update(over)
    return record


def _mint(wallet: str, at: datetime, n: int) -> dict:
    return {"chain_id": 31337, "block_number": n, "block_hash": f"0x{n:064x}", "block_time": at,
            "tx_hash": f"0x{n:064x}", "log_index": 0, "contract": "0x" + "ce" * 20,
            "standard": "ERC721", "token_id": str(n), "amount": "1", "from_address": "0x" + "0" * 40,
            "to_address": wallet, "kind": "MINT", "price_wei": None}  # fmt: skip


def story() -> tuple[list[dict], list[dict], list[dict]]:
    """(purchases, auth events, chain transfers), each in event-time order."""
    opens = T0
    history = T0 - timedelta(days=60)
    transfers = [_mint(w, history, n) for n, w in enumerate((CLEAN, TRAVELLER, VICTIM, BANNED), 1)]
    auth = [_auth(f"ato-fail-{i}", VICTIM, T0 + timedelta(minutes=1, seconds=10 * i),
                  "LOGIN_FAILED", ip="45.14.71.9", device_id="dev-attacker") for i in range(6)]
    auth += [
        _auth("ato-ok", VICTIM, T0 + timedelta(minutes=2), "LOGIN_OK", ip="45.14.71.9",
              device_id="dev-attacker"),
        _auth("ato-pw", VICTIM, T0 + timedelta(minutes=3), "PASSWORD_CHANGED", ip="45.14.71.9",
              device_id="dev-attacker"),
    ]
    purchases = [_purchase("clean-1", CLEAN, T0 + timedelta(hours=1))]
    purchases += [
        _purchase(f"bot-{i}", BOT, opens + timedelta(seconds=1 + 5 * i), quantity=8,
                  ip="3.1.2.3", device_id="dev-bot", user_agent="python-requests/2.31",
                  account_created_at=opens - timedelta(minutes=30), phone_verified=False,
                  mfa_enabled=False, sale_opens_at=opens, card_fingerprint=f"bot-card-{i % 4}")
        for i in range(8)
    ]
    purchases += [
        _purchase("travel-1", TRAVELLER, T0 + timedelta(minutes=10)),
        _purchase("travel-2", TRAVELLER, T0 + timedelta(minutes=30), geo=NEW_YORK,
                  ip="24.0.0.1"),
        _purchase("ato-1", VICTIM, T0 + timedelta(minutes=4), ip="45.14.71.9",
                  device_id="dev-attacker", quantity=6, unit_price_minor=20_000),
        _purchase("banned-1", BANNED, T0 + timedelta(minutes=20), ip=BANNED_IP),
    ]
    purchases.sort(key=lambda p: p["occurred_at"])
    return purchases, auth, transfers


# What the pipeline must decide, and reasons each decision must carry.
BOT_SIGNS = {"bot_user_agent", "datacenter_ip", "new_account_high_value"}
EXPECTED = {
    "clean-1": ("APPROVED", set()),
    "travel-1": ("APPROVED", set()),
    "travel-2": ("MANUAL_REVIEW", {"impossible_travel", "high_geo_speed"}),
    "ato-1": ("MANUAL_REVIEW", {"failed_logins_then_success", "password_change_new_device",
                                "purchase_right_after_password_change"}),
    "banned-1": ("BLOCKED", {"blocklisted_ip"}),
    "bot-0": ("MANUAL_REVIEW", BOT_SIGNS | {"quantity_over_limit", "sale_open_snipe"}),
    **{f"bot-{i}": ("MANUAL_REVIEW", BOT_SIGNS | {"many_tickets_24h"}) for i in range(1, 8)},
}
# Security events the decisions must raise: (kind, purchase_id).
EXPECTED_SECURITY_EVENTS = {
    ("impossible_travel", "travel-2"),
    ("fraud_detected", "banned-1"),
    ("blocklist_hit", "banned-1"),
}
