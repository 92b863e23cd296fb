"""Tokens: how they are made, stored and checked.

A token is 32 lower-case hex characters, the only shape the real client accepts. With a
password it is ``md5(username + password)`` (the original server's scheme, which the client
computes itself); without one it is 128 random bits. Only a salted scrypt hash of the token is
stored (``scrypt$N$r$p$salt$hash``), so a leaked database does not leak tokens, and guessing a
password-derived token from its hash is slow. Comparison is constant-time.

Hashing is deliberately slow (about 50 ms): callers on the event loop run `verify_token` in a
thread, and `bot_logging_server.auth` caches successful checks.

Ingest keys are random tokens of the same shape, stored the same way. A key arrives without
a name, so each is also stored with its `key_lookup`: the first 64 bits of its SHA-256, an
index to find the candidate row (never enough to rebuild a 128-bit random key) before the
scrypt hash is checked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

__all__ = [
    "DUMMY_HASH",
    "hash_token",
    "is_token_shaped",
    "key_lookup",
    "normal_token",
    "password_token",
    "random_token",
    "set_hash_cost",
    "verify_token",
]

_TOKEN_RE = re.compile(r"[0-9a-f]{32}")
# scrypt cost: 16 MiB of memory and ~50 ms per hash on this project's 2-core machine.
_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024


def password_token(username: str, password: str) -> str:
    """The original scheme: ``md5(username + password)`` as 32 hex characters."""
    return hashlib.md5((username + password).encode("utf-8")).hexdigest()


def random_token() -> str:
    """A new random token: 128 bits as 32 lower-case hex characters."""
    return secrets.token_hex(16)


def is_token_shaped(token: str | None) -> bool:
    """True when `token` is exactly 32 lower-case hex characters."""
    return token is not None and _TOKEN_RE.fullmatch(token) is not None


def key_lookup(key: str) -> str:
    """The stored index of an ingest key: 16 hex characters of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def normal_token(token: str | None) -> str | None:
    """`token` as it is compared (surrounding spaces dropped, lower case), or None when it
    is missing or not 32 hex digits: a token that can never match."""
    if token is None:
        return None
    token = token.strip().lower()
    return token if is_token_shaped(token) else None


def set_hash_cost(n: int) -> None:
    """Make new hashes with scrypt cost N = `n` (a power of two, 2 or more) instead of 2**14.

    For test suites and benchmarks that create thousands of users (at the production cost a
    hash takes ~50 ms). A hash carries its own cost, so the hashes made before, at any cost,
    still verify; `DUMMY_HASH` keeps the production cost.
    """
    global _N
    if n < 2 or n & (n - 1):
        raise ValueError("the scrypt cost must be a power of two, 2 or more")
    _N = n


def hash_token(token: str) -> str:
    """The stored form of `token`: ``scrypt$N$r$p$salt_hex$hash_hex`` with a fresh salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(token.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_token(token: str, stored: str) -> bool:
    """True when `token` hashes to `stored`; compares in constant time, never raises."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            token.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), expected)


#: A hash of no real token, checked when the user is unknown so that an unknown user and a
#: wrong token cost the same time (the contract: a 403 never says whether the user exists).
DUMMY_HASH = f"scrypt${_N}${_R}${_P}$" + "00" * 16 + "$" + "00" * 64
