"""Where webhooks may go: a guard against server-side request forgery.

A webhook endpoint's URL is typed by staff or by an API key with the ``admin`` scope. The platform must not
be made to send requests into the networks it runs in: the cloud's metadata service (169.254.169.254),
the database, Redis, an internal admin page. So webhooks go only to public addresses, with two
exceptions that the operator lists in ``WEBHOOK_TRUSTED_HOSTS``: host names, IP addresses and networks of
the broker's own systems, which usually sit on a private network.

- At registration, a URL whose host is written as an address (or ``localhost``) that is neither public
  nor trusted is refused, with the reason. Host names are not looked up then (nothing is sent anywhere
  while a form is being filled in).
- At delivery, a trusted host is sent to as it is. Any other goes through ``requests-hardened``: the name
  is resolved once, the address is checked (private, loopback, link-local, shared and other special
  ranges are refused) and the connection is pinned to it, so a name that resolves to a public address
  when checked cannot reach a private one when connected. A refused address fails the message at once
  (retrying cannot help; staff see it among the undelivered messages and can send it again once the
  host is trusted). Redirects are never followed."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from requests_hardened import Config, Manager
from requests_hardened.ip_filter import InvalidIPAddress

__all__ = ["InvalidIPAddress", "address_refusal", "is_trusted", "webhook_post"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
            if "/" in entry or ":" in entry:
                raise ImproperlyConfigured(
                    f"WEBHOOK_TRUSTED_HOSTS: {entry!r} is neither a host name, an IP address nor a network"
                ) from None
            names.add(entry.rstrip("."))
    return frozenset(names), tuple(networks)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:  # ::ffff:10.0.0.1 is 10.0.0.1
        return address.ipv4_mapped
    return address


def is_trusted(host: str) -> bool:
    """Whether ``host`` (a URL's host: a name or an address) is one of the broker's own systems."""
    names, networks = _trusted(tuple(settings.WEBHOOK_TRUSTED_HOSTS))
    host = host.lower().rstrip(".")
    address = _address(host)
    if address is None:
        return host in names
    return any(address in network for network in networks)


def address_refusal(url: str) -> str | None:
    """Why a webhook may not be registered at ``url``, or None. Only what the URL itself says is checked:
    an address, or ``localhost``; a host name is checked, once resolved, at each delivery."""
    host = (urlsplit(url).hostname or "").lower()
    if not host or is_trusted(host):
        return None
    address = _address(host)
    if host == "localhost" or host.endswith(".localhost"):
        what = "this machine"
    elif address is not None and not address.is_global:
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
    if is_trusted(urlsplit(url).hostname or ""):
        return requests.post(url, data=data, headers=headers, timeout=timeout, allow_redirects=False)
    return _guarded().send_request(
        "POST", url, data=data, headers=headers, timeout=timeout, allow_redirects=False
    )
