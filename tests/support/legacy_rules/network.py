"""Network rules: where the request comes from — IP reputation and shared infrastructure."""

from __future__ import annotations

from tests.support.legacy_rules.base import NETWORK, Hit, Params, RuleContext, at_least, rule

at_least("same_ip_many_wallets", NETWORK, 0.5, "wallets_per_ip_24h", "max_wallets", 5,
         "wallets on this IP in 24 h")  # fmt: skip
at_least("same_device_many_wallets", NETWORK, 0.6, "wallets_per_device_24h", "max_wallets", 3,
         "wallets on this device in 24 h")  # fmt: skip
at_least("shared_card_many_wallets", NETWORK, 0.6, "wallets_per_card_24h", "max_wallets", 2,
         "wallets paying with this card in 24 h")  # fmt: skip
at_least("linked_wallet_cluster", NETWORK, 0.5, "linked_wallets", "max_cluster", 6,
         "wallets linked by a shared IP, device or card in 24 h")  # fmt: skip


@rule("blocklisted_ip", NETWORK, 1.0, hard=True)
def blocklisted_ip(ctx: RuleContext, p: Params) -> Hit | None:
    """The IP is on the blocklist (passed in by the caller): forces BLOCKED."""
    ip = ctx.purchase.get("ip")
    if ip and ip in ctx.blocked_ips:
        return 1.0, f"IP {ip} is blocklisted"
    return None


@rule("datacenter_ip", NETWORK, 0.45)
def datacenter_ip(ctx: RuleContext, p: Params) -> Hit | None:
    """The IP belongs to a hosting or cloud provider, not a consumer network."""
    if ctx.ip is not None and ctx.ip in ctx.lists["datacenter"]:
        return 1.0, f"IP {ctx.ip} is in a datacenter range"
    return None


@rule("tor_exit_node", NETWORK, 0.7)
def tor_exit_node(ctx: RuleContext, p: Params) -> Hit | None:
    """The IP is a Tor exit relay."""
    if ctx.ip is not None and ctx.ip in ctx.lists["tor_exit"]:
        return 1.0, f"IP {ctx.ip} is a Tor exit node"
    return None


@rule("proxy_vpn_ip", NETWORK, 0.35)
def proxy_vpn_ip(ctx: RuleContext, p: Params) -> Hit | None:
    """The IP belongs to a commercial VPN or open proxy range."""
    if ctx.ip is not None and ctx.ip in ctx.lists["proxy"]:
        return 1.0, f"IP {ctx.ip} is in a VPN/proxy range"
    return None


@rule("non_public_ip", NETWORK, 0.2)
def non_public_ip(ctx: RuleContext, p: Params) -> Hit | None:
    """A private, loopback or reserved IP reached the edge: spoofed or misrouted."""
    ip = ctx.ip
    if ip is not None and not ip.is_global:
        return 1.0, f"IP {ip} is not a public address"
    return None


@rule("invalid_ip", NETWORK, 0.3)
def invalid_ip(ctx: RuleContext, p: Params) -> Hit | None:
    """The IP field does not parse as an address."""
    if ctx.ip is None:
        return 1.0, f"IP {ctx.purchase.get('ip')!r} is not a valid address"
    return None
