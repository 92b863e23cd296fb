"""Database host lists: ``h1:p1,h2:p2,h3`` parsed into `HostPort` addresses, in order.

Part of the configuration (a bad list is a `ConfigError` naming the entry); the storage layer
(`bot_logging_server.storage.hosts`) checks the nodes and picks one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_PORT", "HostPort", "parse_hosts"]

DEFAULT_PORT = 3306

_HOST_RE = re.compile(
    r"\[(?P<ipv6>[0-9A-Fa-f:.]+)\](?::(?P<port6>[^:]*))?"
    r"|(?P<name>[A-Za-z0-9._-]+)(?::(?P<port>[^:]*))?"
)


@dataclass(frozen=True)
class HostPort:
    """One database server address."""

    host: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        """``host:port``, with an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_hosts(text: str, default_port: int = DEFAULT_PORT) -> tuple[HostPort, ...]:
    """Parse ``h1:p1,h2:p2,h3`` (a port may be left out; IPv6 in brackets: ``[::1]:3307``).

    Spaces around entries are ignored. Raises `ConfigError` naming the bad entry when an
    entry is empty, malformed, has a port outside 1-65535, or repeats an earlier one.
    """
    from bot_logging_server.config import ConfigError  # the package imports this module

    found: list[HostPort] = []
    for raw in text.split(","):
        entry = raw.strip()
        match = _HOST_RE.fullmatch(entry)
        if not entry or match is None:
            raise ConfigError(
                f"database hosts: {entry!r} is not host or host:port "
                "(a list looks like h1:3306,h2:3306)"
            )
        host = match["ipv6"] or match["name"]
        port_text = match["port6"] if match["ipv6"] else match["port"]
        if port_text is None:
            port = default_port
        elif port_text.isdigit() and 1 <= int(port_text) <= 65535:
            port = int(port_text)
        else:
            raise ConfigError(f"database hosts: {entry!r} has no valid port (1-65535)")
        address = HostPort(host, port)
        if address in found:
            raise ConfigError(f"database hosts: {entry!r} is listed twice")
        found.append(address)
    return tuple(found)
