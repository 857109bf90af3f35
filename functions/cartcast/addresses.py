"""Which network addresses cartcast sends to: public unicast ones, and loopback in a
local run.

Webhook URLs (brands.py) and product images (images.py) go by the one rule here.
An address is refused unless `ipaddress` calls it global, which leaves out the
private, shared (100.64.0.0/10, which a Google Cloud VPC may use as a subnet),
link-local (the metadata server), documentation and reserved ranges. On top of
that rule:

- multicast is refused, though some of it is global (224.0.1.0/24, ff0e::/16);
- IPv6 site-local (fec0::/10) is refused: deprecated (RFC 3879), yet not among
  the ranges Python's `is_global` leaves out; so is the rest of what `ipaddress`
  calls reserved (on Python 3.11 that includes ::/8, with the deprecated
  IPv4-compatible ::/96, but NAT64's prefix below is judged by what it carries);
- an IPv6 address that carries an IPv4 one is judged by that one too: mapped
  (::ffff:0:0/96), 6to4 (2002::/16), Teredo (2001::/32, server and client) and
  NAT64's well-known prefix (64:ff9b::/96, RFC 6052), so 2002:a9fe:a9fe:: is the
  metadata server it wraps. A mapped address is the IPv4 one to the socket layer,
  so it is judged as that address alone.
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")


def is_refused(address: Address, *, allow_loopback: bool) -> bool:
    """Say whether cartcast must not connect to `address`.

    `allow_loopback` is for a local run, whose webhooks and images the tests
    serve on this machine.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback and allow_loopback:
        return False
    return any(_is_internal(each) for each in (address, *_embedded_ipv4(address)))


def _is_internal(address: Address) -> bool:
    if address.is_multicast or not address.is_global:
        return True
    if isinstance(address, ipaddress.IPv6Address):
        return address.is_site_local or (
            address.is_reserved and address not in NAT64_WELL_KNOWN
        )
    return address.is_reserved


def _embedded_ipv4(address: Address) -> list[ipaddress.IPv4Address]:
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = []
    if address.sixtofour:
        found.append(address.sixtofour)
    if address.teredo:
        found.extend(address.teredo)
    if address in NAT64_WELL_KNOWN:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found
