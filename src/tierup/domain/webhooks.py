"""Webhook rules: which URLs may receive events, when a failed delivery is tried again, when an endpoint
has failed long enough to be switched off."""

from __future__ import annotations

import ipaddress
import socket
from datetime import datetime, timedelta
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000
# After the n-th failed attempt the next comes this much later: the first retry within seconds, for a
# receiver that was restarting, then further apart so that an endpoint down for hours is not hammered.
RETRY_DELAYS = (timedelta(seconds=5), timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30),
                timedelta(hours=2), timedelta(hours=5), timedelta(hours=10))
# A message is tried for this long after its first attempt; the last try comes exactly then.
RETRY_WINDOW = timedelta(hours=24)
# Attempts a message gets at most: the first, one after each delay, a last one at the window's end.
MAX_ATTEMPTS = len(RETRY_DELAYS) + 2
# An endpoint whose attempts have all failed for this long is disabled.
DISABLE_AFTER = timedelta(hours=24)


def url_problem(url: str, *, allow_http: bool, allow_private: bool) -> str | None:
    """Why an endpoint URL cannot receive webhooks, or None. Plain http only outside production: the
    payloads name members, and the signature proves who sent them, not that nobody else read them. A
    private address (`allow_private` aside) is refused as named here; a name is judged where it resolves, when
    a delivery connects (services.webhooks)."""
    if len(url) > MAX_URL_LENGTH:
        return f"url is longer than {MAX_URL_LENGTH} characters"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "url contains spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # raises on a port that is not a number in 0–65535
    except ValueError:
        return "url is not a valid URL"
    if parts.scheme not in ("https", "http"):
        return "url must start with https://" + (" or http://" if allow_http else "")
    if parts.scheme == "http" and not allow_http:
        return "url must use https:// in production"
    if not parts.hostname:
        return "url names no host"
    if parts.username is not None or parts.password is not None:
        return "url must not carry a user name or password; the signature authenticates the sender"
    if parts.fragment:
        return "url must not have a #fragment"
    if not allow_private and _names_private(parts.hostname):
        return f"url points to a private address ({parts.hostname}); {PRIVATE_TARGETS_ADVICE}"
    return None


PRIVATE_TARGETS_ADVICE = "set TIERUP_WEBHOOK_PRIVATE_TARGETS=1 to deliver to your own network"


def private_address(address: str) -> bool:
    """Whether an IP address is off the public internet: this server's own network, loopback, link-local (where
    a cloud's metadata service answers), shared, reserved or multicast. Sending there on an operator's say-so
    would let a program's operator reach what only the server can."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope (fe80::1%eth0) changes nothing
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local or any(private_address(str(v4)) for v4 in _carried(ip)):
            return True
    return not ip.is_global or ip.is_multicast


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix a NAT64 gateway translates to IPv4
_COMPATIBLE = ipaddress.ip_network("::/96")  # "IPv4-compatible" addresses, ::a.b.c.d


def _carried(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: mapped, 6to4, Teredo, NAT64 or IPv4-compatible."""
    carried = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64 or ip in _COMPATIBLE:
        carried.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in carried if v4 is not None]


def _names_private(host: str) -> bool:
    host = host.lower().rstrip(".")  # urlsplit keeps a name's case and its root's dot
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return private_address(host)
    except ValueError:  # not an address as written canonically; the resolver also reads 127.1, 2130706433, 0x7f.1
        pass
    try:
        return private_address(socket.inet_ntoa(socket.inet_aton(host)))
    except OSError:  # a name, judged where it resolves
        return False


def next_attempt_at(first_attempt: datetime, attempts_made: int, now: datetime) -> datetime | None:
    """When to try a message again after its `attempts_made`-th attempt failed at `now`; None once the
    window after its first attempt has passed (the message has failed for good)."""
    last = first_attempt + RETRY_WINDOW
    if now >= last:
        return None
    delay = RETRY_DELAYS[min(attempts_made, len(RETRY_DELAYS)) - 1]
    return min(now + delay, last)


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    """An attempt failed at `now`: has the endpoint failed without a success in between for long enough?"""
    return failing_since is not None and now - failing_since >= DISABLE_AFTER
