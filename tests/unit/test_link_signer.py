"""Signed ``/files`` links: valid for one file and variant, until their expiry, and no longer."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from sora_actors.http.signing import UrlSigner, Verdict
from sora_actors.settings import Settings

KEY = b"0123456789abcdef0123456789abcdef"
NOW = 1_764_600_000.0  # a fixed moment (Unix seconds)


def parts(url: str) -> tuple[str, str, str]:
    """(path, exp, sig) of a signed link."""
    split = urlsplit(url)
    query = parse_qs(split.query, strict_parsing=True)
    return split.path, query["exp"][0], query["sig"][0]


def test_a_link_verifies_for_its_file_and_variant_only() -> None:
    signer = UrlSigner(KEY, ttl_seconds=3600)
    signed = signer.sign("video_a", "video")
    path, exp, sig = parts(signed.url)
    assert path == "/files/video_a/video" and int(exp) == signed.expires_at
    assert signer.verify("video_a", "video", exp, sig) is Verdict.VALID
    assert signer.verify("video_b", "video", exp, sig) is Verdict.INVALID
    assert signer.verify("video_a", "thumbnail", exp, sig) is Verdict.INVALID
    later = str(int(exp) + 300)  # a later expiry is a different message
    assert signer.verify("video_a", "video", later, sig) is Verdict.INVALID
    assert signer.verify("video_a", "video", exp, sig[:-1] + ("A" if sig[-1] != "A" else "B")) is (
        Verdict.INVALID
    )
    other = UrlSigner(KEY[::-1], ttl_seconds=3600)
    assert other.verify("video_a", "video", exp, sig) is Verdict.INVALID


def test_expiry_is_rounded_up_so_repeated_reads_give_the_same_link() -> None:
    signer = UrlSigner(KEY, ttl_seconds=3600)  # step: min(300, 3600 // 12) = 300 s
    first = signer.sign("video_a", "video", now=NOW)
    assert first.expires_at == 1_764_603_600  # NOW + TTL is on a step already
    within = signer.sign("video_a", "video", now=NOW + 1)
    assert within.expires_at == 1_764_603_900  # rounded up to the next step
    assert signer.sign("video_a", "video", now=NOW + 299) == within  # same link, cacheable
    assert signer.sign("video_a", "video", now=NOW + 301).expires_at == 1_764_604_200
    short = UrlSigner(KEY, ttl_seconds=60)  # step: 60 // 12 = 5 s
    assert short.sign("v", "video", now=NOW + 1).expires_at == 1_764_600_065


def test_an_expired_link_is_told_apart_from_a_forged_one() -> None:
    signer = UrlSigner(KEY, ttl_seconds=60)
    old = signer.sign("video_a", "video", now=time.time() - 3600)
    _, exp, sig = parts(old.url)
    assert signer.verify("video_a", "video", exp, sig) is Verdict.EXPIRED
    assert signer.verify("video_a", "video", exp, "forged") is Verdict.INVALID


@pytest.mark.parametrize(
    ("expires", "signature"),
    [
        (None, "sig"),
        ("", "sig"),
        ("1764603600", None),
        ("1764603600", ""),
        ("-1764603600", "sig"),
        ("1.5", "sig"),
        ("١٢٣", "sig"),  # digits, but not ASCII ones
        ("9" * 13, "sig"),  # more than 12 digits: refused before any arithmetic
    ],
)
def test_malformed_parameters_are_invalid(expires: str | None, signature: str | None) -> None:
    assert UrlSigner(KEY, 3600).verify("video_a", "video", expires, signature) is Verdict.INVALID


def test_the_origin_is_configured_or_the_requests_never_another_clients() -> None:
    plain = UrlSigner(KEY, ttl_seconds=3600)
    assert plain.sign("v", "video", now=NOW).url.startswith("/files/v/video?")
    assert plain.sign("v", "video", now=NOW, base="http://a:1/").url.startswith(
        "http://a:1/files/v/video?"
    )
    public = UrlSigner(KEY, ttl_seconds=3600, public_base_url="https://cdn.example/")
    assert public.sign("v", "video", now=NOW, base="http://evil").url.startswith(
        "https://cdn.example/files/v/video?"
    )


def test_the_key_comes_from_the_content_secret_else_the_jwt_secret() -> None:
    jwt_only = Settings(jwt_secret="j" * 32, content_url_secret="")
    same_jwt = Settings(jwt_secret="j" * 32, content_url_secret="")
    own = Settings(jwt_secret="j" * 32, content_url_secret="c" * 32)
    signed = UrlSigner.from_settings(jwt_only).sign("v", "video")
    _, exp, sig = parts(signed.url)
    assert UrlSigner.from_settings(same_jwt).verify("v", "video", exp, sig) is Verdict.VALID
    assert UrlSigner.from_settings(own).verify("v", "video", exp, sig) is Verdict.INVALID
    # The key is derived, never the secret itself: a MAC keyed with the raw secret fails.
    raw = UrlSigner(("j" * 32).encode(), ttl_seconds=3600)
    assert raw.verify("v", "video", exp, sig) is Verdict.INVALID
