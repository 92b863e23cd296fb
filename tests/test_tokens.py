"""``tokens.py`` on its own: how tokens are made, stored and checked.

A stored hash is salted (two users with the same token never share a hash), self-describing
(``scrypt$N$r$p$salt$hash``, so hashes made with other costs still verify), and checking it
rejects a token or a stored hash that differs in a single bit, never raising. The dummy hash
an unknown user is checked against costs what a real check costs; an ingest key's lookup
index is a fixed, short prefix of its SHA-256.
"""

from __future__ import annotations

import hashlib
import statistics
import time

import pytest

from bot_logging_server.tokens import (
    DUMMY_HASH,
    hash_token,
    is_token_shaped,
    key_lookup,
    password_token,
    random_token,
    verify_token,
)

TOKEN = "0123456789bcde01" * 2  # every position flips to another hex digit


def flip_bit(text: str, index: int) -> str:
    """`text` with the lowest bit of its character at `index` flipped ('0' <-> '1')."""
    return text[:index] + chr(ord(text[index]) ^ 1) + text[index + 1 :]


def flip_hex_bit(hex_text: str) -> str:
    """`hex_text` with the lowest bit of its last byte flipped (still valid hex)."""
    raw = bytearray(bytes.fromhex(hex_text))
    raw[-1] ^= 1
    return raw.hex()


def fields(stored: str) -> tuple[str, int, int, int, str, str]:
    scheme, n, r, p, salt, digest = stored.split("$")
    return scheme, int(n), int(r), int(p), salt, digest


def test_a_hash_is_scrypt_with_a_16_byte_salt_and_a_64_byte_digest(production_hash_cost):
    scheme, n, r, p, salt, digest = fields(hash_token(TOKEN))
    assert scheme == "scrypt"
    assert (n, r, p) == (2**14, 8, 1)  # the deliberate cost: 16 MiB of memory per check
    assert len(bytes.fromhex(salt)) == 16
    assert len(bytes.fromhex(digest)) == 64
    expected = hashlib.scrypt(TOKEN.encode(), salt=bytes.fromhex(salt), n=n, r=r, p=p)
    assert digest == expected.hex()


def test_two_users_with_the_same_token_get_different_hashes():
    first, second = hash_token(TOKEN), hash_token(TOKEN)
    assert fields(first)[4] != fields(second)[4]  # a fresh salt each time
    assert fields(first)[5] != fields(second)[5]
    assert verify_token(TOKEN, first) and verify_token(TOKEN, second)


def test_the_right_token_verifies():
    assert verify_token(TOKEN, hash_token(TOKEN))


@pytest.mark.parametrize("index", [0, 15, 31], ids=["first", "middle", "last"])
def test_a_token_one_bit_off_is_rejected(index):
    wrong = flip_bit(TOKEN, index)
    assert is_token_shaped(wrong)
    assert not verify_token(wrong, hash_token(TOKEN))


@pytest.mark.parametrize("part", ["salt", "digest"])
def test_a_stored_hash_one_bit_off_is_rejected(part):
    stored = hash_token(TOKEN)
    head, salt, digest = stored.rsplit("$", 2)
    if part == "salt":
        stored = f"{head}${flip_hex_bit(salt)}${digest}"
    else:
        stored = f"{head}${salt}${flip_hex_bit(digest)}"
    assert not verify_token(TOKEN, stored)


def test_a_hash_made_with_other_costs_still_verifies():
    # The cost is read from the stored hash, so raising it later keeps old hashes working.
    salt = bytes(range(16))
    digest = hashlib.scrypt(TOKEN.encode(), salt=salt, n=2**10, r=4, p=2)
    stored = f"scrypt${2**10}$4$2${salt.hex()}${digest.hex()}"
    assert verify_token(TOKEN, stored)
    assert not verify_token(flip_bit(TOKEN, 0), stored)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        TOKEN,
        "md5$" + hashlib.md5(TOKEN.encode()).hexdigest(),
        "scrypt$16384$8$1$nothex$00",
        "scrypt$x$8$1$00$00",
        "scrypt$1000$8$1$00$00",  # N not a power of two
        "scrypt$16384$8$1$00",  # a field missing
        f"scrypt${2**30}$8$1$00$00",  # over the memory limit
        "bcrypt$16384$8$1$00$00",
    ],
    ids=lambda s: s[:24] or "empty",
)
def test_a_malformed_stored_hash_is_rejected_without_raising(stored):
    assert verify_token(TOKEN, stored) is False


def test_a_token_that_cannot_be_encoded_is_rejected_without_raising():
    assert verify_token("\ud800" * 32, hash_token(TOKEN)) is False


def test_the_dummy_hash_matches_no_token_and_costs_what_a_real_check_costs(production_hash_cost):
    assert not verify_token(TOKEN, DUMMY_HASH)
    assert not verify_token("0" * 32, DUMMY_HASH)
    assert fields(DUMMY_HASH)[:4] == fields(hash_token(TOKEN))[:4]  # same scheme and cost
    real = hash_token(TOKEN)

    def seconds(stored: str) -> float:
        started = time.perf_counter()
        verify_token(flip_bit(TOKEN, 0), stored)
        return time.perf_counter() - started

    dummy_time = statistics.median(seconds(DUMMY_HASH) for _ in range(3))
    real_time = statistics.median(seconds(real) for _ in range(3))
    # A dummy that failed to parse would return in microseconds instead of tens of ms.
    assert dummy_time > real_time / 3, (dummy_time, real_time)


def test_password_token_is_md5_of_name_then_password_in_utf8():
    assert password_token("alice", "pw") == "15da1f78ad7d474862865bab1aab4d51"
    assert password_token("zoë", "päss") == "ebb84250f7f5e4fc4752ccf3a74a6b8c"
    assert password_token("ali", "cepw") == password_token("alice", "pw")  # the old scheme
    assert is_token_shaped(password_token("alice", "pw"))


def test_a_key_lookup_is_16_hex_of_the_keys_sha256_and_changes_with_any_bit():
    lookup = key_lookup(TOKEN)
    assert lookup == hashlib.sha256(TOKEN.encode()).hexdigest()[:16]
    assert lookup == key_lookup(TOKEN)  # no salt: the index finds the row again
    assert {key_lookup(flip_bit(TOKEN, i)) for i in range(32)} & {lookup} == set()
    assert len({key_lookup(flip_bit(TOKEN, i)) for i in range(32)}) == 32


def test_random_tokens_are_token_shaped_and_never_repeat():
    tokens = {random_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(is_token_shaped(token) for token in tokens)


@pytest.mark.parametrize(
    ("token", "shaped"),
    [
        (TOKEN, True),
        ("f" * 32, True),
        (TOKEN.upper(), False),
        (TOKEN[:-1], False),
        (TOKEN + "0", False),
        (TOKEN[:-1] + "g", False),
        (TOKEN + "\n", False),
        (" " + TOKEN[1:], False),
        ("", False),
        (None, False),
    ],
    ids=["hex", "all-f", "upper", "31", "33", "not-hex", "newline", "space", "empty", "none"],
)
def test_only_32_lower_case_hex_characters_are_token_shaped(token, shaped):
    assert is_token_shaped(token) is shaped
