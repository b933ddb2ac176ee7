"""Where webhooks may go: public addresses and the broker's trusted hosts only, refused at registration as at
delivery and pinned at delivery, against server-side request forgery (docs/api.md, "Webhooks")."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from requests_hardened import Config, Manager, ip_filter
from requests_hardened.ip_filter import InvalidIPAddress
from urllib3.util import parse_url

__all__ = ["InvalidIPAddress", "is_trusted", "trusted_hosts_check", "url_refusal", "webhook_post"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 forms that carry an IPv4 address or are deprecated site-local, which Python does not count as
# private: refused at registration, and added to requests-hardened's own list (read on every check).
SPECIAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("::/96", "::ffff:0:0:0/96", "fec0::/10"))
if not set(SPECIAL_NETWORKS) <= set(ip_filter.EXTRA_BLOCKED_NET_RANGES):
    ip_filter.EXTRA_BLOCKED_NET_RANGES = (*ip_filter.EXTRA_BLOCKED_NET_RANGES, *SPECIAL_NETWORKS)

HOST_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"
)


@lru_cache(maxsize=8)
def _trusted(entries: tuple[str, ...]) -> tuple[frozenset[str], tuple[Network, ...]]:
    names, networks = set(), []
    for entry in entries:
        entry = entry.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            name = entry.rstrip(".")
            if not HOST_NAME.match(name):
                raise ImproperlyConfigured(
                    f"WEBHOOK_TRUSTED_HOSTS: {entry!r} is neither a host name, an IP address nor a network "
                    "(no wildcards: list each host)"
                ) from None
            names.add(name)
    return frozenset(names), tuple(networks)


def trusted_hosts_check() -> None:
    """Refuse to start with a ``WEBHOOK_TRUSTED_HOSTS`` entry that is not a host, address or network
    (``NotificationsConfig.ready``): a typo must not be found at the first delivery."""
    _trusted(tuple(settings.WEBHOOK_TRUSTED_HOSTS))


def _host(url: str) -> str:
    """The host ``requests`` will connect to, as urllib3 reads the URL."""
    return (parse_url(url).host or "").lower()


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:  # ::ffff:10.0.0.1 is 10.0.0.1
        return address.ipv4_mapped
    return address


def refused_at_delivery(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether delivery would refuse ``address`` (requests-hardened's rule: private, multicast, or in its list
    of special ranges — NAT64, 6to4, CG-NAT and the others), or Python does not count it as global."""
    return (
        not address.is_global
        or address.is_private
        or address.is_multicast
        or any(address in network for network in ip_filter.EXTRA_BLOCKED_NET_RANGES)
    )


def is_trusted(host: str) -> bool:
    """Whether ``host`` (a URL's host: a name or an address) is one of the broker's own systems."""
    names, networks = _trusted(tuple(settings.WEBHOOK_TRUSTED_HOSTS))
    host = host.lower().rstrip(".")
    address = _address(host)
    if address is None:
        return host in names
    return any(address in network for network in networks)


def url_refusal(url: str) -> str | None:
    """Why a webhook may not be registered at ``url``, or None. Only what the URL itself says is checked:
    no user name, password or backslash; an address, or ``localhost``. A host name is checked, once
    resolved, at each delivery."""
    if "\\" in url or parse_url(url).auth is not None:
        return "a webhook URL carries no user name, password or backslash"
    host = _host(url)
    if not host or is_trusted(host):
        return None
    address = _address(host)
    if host == "localhost" or host.endswith(".localhost"):
        what = "this machine"
    elif address is not None and address.is_multicast:
        what = "a multicast address"
    elif address is not None and refused_at_delivery(address):
        what = "a private or reserved address"
    else:
        return None
    return (
        f"{host} is {what}: webhooks go to public addresses only, or to hosts the operator lists in "
        "WEBHOOK_TRUSTED_HOSTS (the broker's own systems)"
    )


def _guarded() -> Manager:
    return Manager(
        Config(
            ip_filter_enable=True,
            ip_filter_allow_loopback_ips=False,
            never_redirect=True,
            default_timeout=(settings.WEBHOOK_TIMEOUT_SECONDS, settings.WEBHOOK_TIMEOUT_SECONDS),
        )
    )


def webhook_post(url: str, *, data: bytes, headers: dict[str, str]) -> requests.Response:
    """POST a webhook body: to a trusted host as it is; anywhere else only to a public address, pinned.
    Raises ``InvalidIPAddress`` when the host resolves to an address webhooks may not reach."""
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    if is_trusted(_host(url)) and url_refusal(url) is None:
        return requests.post(url, data=data, headers=headers, timeout=timeout, allow_redirects=False)
    return _guarded().send_request(
        "POST", url, data=data, headers=headers, timeout=timeout, allow_redirects=False
    )
