"""Where an http upstream may point, by address: not at mcpd's own listen address, nor at
link-local / cloud metadata addresses (by literal, by name, or by what the name resolves
to), unless the operator's allow-list (``MCPD_UPSTREAM_ALLOW``) names the address, network
or host. Checked when a server is written (:mod:`mcpd.services.capabilities`) and again on
the address every upstream connection reaches (:meth:`Rules.peer`, the supervisor's peer
guard), so a name that resolves elsewhere later gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Link-local and cloud instance-metadata addresses (AWS, GCP, Azure, Alibaba, Oracle...).
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
)
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
    }
)


def _ip(text: str) -> IP | None:
    try:
        ip = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _resolve(host: str, port: int) -> list[IP]:
    literal = _ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []  # unresolvable now: nothing to reach (the connection will fail)
    out = [_ip(str(info[4][0])) for info in infos]
    return [ip for ip in out if ip is not None]


def _own(ip: IP, port: int, host: str, listen_port: int) -> bool:
    """Whether ``ip:port`` reaches mcpd itself (listening on ``host:listen_port``)."""
    if port != listen_port:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return True
    listen = _ip(host)
    if listen is None or listen.is_unspecified:  # a name, or every address of this host
        local = {listen} if listen else set()
        for addr in _resolve(socket.gethostname(), port) + _resolve(host, port):
            local.add(addr)
        return ip in local
    return ip == listen


class Rules:
    """Where an upstream may not point: mcpd's listen address, link-local and metadata
    addresses, except what the operator's allow-list names (hosts, addresses, networks)."""

    def __init__(self, *, host: str, port: int, allow: Iterable[str]) -> None:
        self.host, self.port = host, port
        self.names = {a.lower().rstrip(".") for a in allow}
        self.nets = []
        for entry in self.names:
            try:
                self.nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue

    def address(self, hostname: str, ip: IP, port: int) -> str | None:
        """Why ``hostname`` (reaching ``ip:port``) may not be an upstream, or None."""
        if any(ip in n for n in self.nets):
            return None
        if any(ip in n for n in METADATA_NETWORKS):
            return f"`{hostname}` is (or resolves to) link-local or cloud metadata address {ip}"
        if _own(ip, port, self.host, self.port):
            return f"`{hostname}:{port}` is mcpd's own address"
        return None

    def url(self, url: str) -> str | None:
        """Why ``url`` may not be an upstream (None when it may), by what it resolves to now."""
        parts = urlsplit(url)
        hostname = (parts.hostname or "").lower().rstrip(".")
        try:
            target_port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return "its port is not a number"
        if hostname in self.names:
            return None
        if hostname in METADATA_NAMES:
            return f"`{hostname}` is a cloud metadata service"
        for ip in _resolve(hostname, target_port):
            if (why := self.address(hostname, ip, target_port)) is not None:
                return why
        return None

    def peer(self, hostname: str, peer_ip: str, peer_port: int) -> str | None:
        """The peer guard (:mod:`upstream.guard`): why a connection to ``hostname`` that
        reached ``peer_ip:peer_port`` must not go on - a name that resolved elsewhere
        when the server was written (DNS rebinding) - or None."""
        name = hostname.lower().rstrip(".")
        ip = _ip(peer_ip)
        if name in self.names or ip is None:
            return None if name in self.names else "its peer address is not an IP address"
        why = self.address(name, ip, peer_port)
        return None if why is None else f"{why}; an operator can allow it with MCPD_UPSTREAM_ALLOW"


def blocked(url: str, *, host: str, port: int, allow: Iterable[str]) -> str | None:
    """Why ``url`` may not be an upstream (None when it may): see :class:`Rules`."""
    return Rules(host=host, port=port, allow=allow).url(url)
