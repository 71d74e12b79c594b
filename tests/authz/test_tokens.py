from __future__ import annotations

import hashlib
import re

import pytest

from authz import tokens


@pytest.mark.parametrize(
    ("generate", "prefix", "kind"),
    [
        (tokens.generate_mcp_token, "mcpctl_pat_", "mcptoken"),
        (tokens.generate_session_token, "mcpctl_ses_", "session"),
    ],
)
def test_generated_tokens_have_prefix_base62_body_and_kind(
    generate: object, prefix: str, kind: str
) -> None:
    assert callable(generate)
    seen = {generate() for _ in range(200)}
    assert len(seen) == 200  # random, not repeated
    for raw in seen:
        assert raw.startswith(prefix)
        assert re.fullmatch(r"[0-9A-Za-z]{43}", raw[len(prefix) :])
        assert tokens.token_kind(raw) == kind


def test_base62_encodes_32_bytes_losslessly() -> None:
    for data in (b"\x00" * 32, b"\xff" * 32, bytes(range(32))):
        body = tokens.base62(data)
        assert len(body) == 43
        n = 0
        for ch in body:
            n = n * 62 + tokens._ALPHABET.index(ch)
        assert n.to_bytes(32, "big") == data


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "mcpctl_pat_",
        "mcpctl_pat_short",
        "mcpctl_pat_" + "a" * 44,
        "mcpctl_pat_" + "a" * 42 + "!",
        "Bearer mcpctl_pat_" + "a" * 43,
        "mcpctl_xyz_" + "a" * 43,
    ],
)
def test_token_kind_rejects_malformed(raw: str) -> None:
    assert tokens.token_kind(raw) is None


def test_hash_is_sha256_hex_and_matches_in_constant_time_helper() -> None:
    raw = tokens.generate_mcp_token()
    sha = tokens.token_sha256(raw)
    assert sha == hashlib.sha256(raw.encode()).hexdigest()
    assert not tokens.hashes_equal(sha, sha[:-1] + ("0" if sha[-1] != "0" else "1"))


def test_display_prefix_never_reveals_the_secret_part() -> None:
    raw = tokens.generate_mcp_token()
    shown = tokens.display_prefix(raw)
    assert raw.startswith(shown)
    assert len(shown) == len("mcpctl_pat_") + 6
