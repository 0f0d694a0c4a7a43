"""Signed links to our copies of a task's media.

A browser's ``<video src>`` sends no Authorization header, and the upstream's own link needs
our upstream API key. So the API hands out links to ``/files/<videoId>/<variant>`` that
carry an expiry and an HMAC over (videoId, variant, expiry): anyone holding the link may
play the file until it expires, and nobody can make one for another file or a later time.

The key is ``content_url_secret`` or, when that is empty, derived from the JWT secret (so
links die with a development process's generated secret, as its tokens do).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import time
from dataclasses import dataclass

from quart import current_app, has_app_context, has_request_context, request

from ..clock import iso
from ..settings import Settings
from ..storage import Task

SIGNER_KEY = "sora_actors.signer"
_DERIVATION = b"sora-actors content links v1"


class Verdict(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class SignedUrl:
    url: str
    expires_at: int  # Unix seconds


class UrlSigner:
    """Makes and checks signed media links."""

    def __init__(self, key: bytes, ttl_seconds: int, public_base_url: str = "") -> None:
        self._key = key
        self._ttl = ttl_seconds
        # Links made outside an HTTP request (WebSocket events, encoded once in the actor's
        # task) carry this origin, or none at all: a relative /files/... link, which a page
        # on this origin plays as it is. (Never an origin learnt from some other client's
        # Host header: that would let anyone redirect other users' signed links.)
        self._public_base_url = public_base_url
        # Expiries are rounded up to this step, so the links in repeated reads of a task
        # stay the same for a while (the browser keeps its cached video): valid for at
        # least the TTL, at most one step more.
        self._step = max(1, min(300, ttl_seconds // 12))

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlSigner:
        secret = settings.content_url_secret or settings.jwt_secret
        key = hmac.new(secret.encode(), _DERIVATION, hashlib.sha256).digest()
        return cls(key, settings.content_url_ttl_seconds, settings.public_base_url)

    def _mac(self, video_id: str, variant: str, expires: int) -> str:
        message = f"{video_id}\n{variant}\n{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(
        self, video_id: str, variant: str, *, now: float | None = None, base: str | None = None
    ) -> SignedUrl:
        """A link valid for at least the configured TTL from ``now``."""
        moment = time.time() if now is None else now
        expires = math.ceil((moment + self._ttl) / self._step) * self._step
        path = (
            f"/files/{video_id}/{variant}?exp={expires}&sig={self._mac(video_id, variant, expires)}"
        )
        origin = self._public_base_url or base or ""
        return SignedUrl(origin.rstrip("/") + path, expires)

    def verify(
        self, video_id: str, variant: str, expires: str | None, signature: str | None
    ) -> Verdict:
        """Check a link's parameters; the MAC first, so a forged link learns nothing more."""
        if (
            not expires
            or not signature
            or not (expires.isascii() and expires.isdigit())
            or len(expires) > 12
        ):
            return Verdict.INVALID
        wanted = self._mac(video_id, variant, int(expires))
        if not hmac.compare_digest(wanted.encode(), signature.encode()):
            return Verdict.INVALID
        if int(expires) <= time.time():
            return Verdict.EXPIRED
        return Verdict.VALID


_process_signer: UrlSigner | None = None


def install(signer: UrlSigner) -> None:
    """Make ``signer`` the one used where no app context exists (one app per process)."""
    global _process_signer
    _process_signer = signer


def current_signer() -> UrlSigner | None:
    if has_app_context():
        signer: UrlSigner | None = current_app.extensions.get(SIGNER_KEY)
        if signer is not None:
            return signer
    return _process_signer


def request_origin() -> str | None:
    """``http://host:port`` of the request being served, if any."""
    if has_request_context():
        return request.host_url.rstrip("/")
    return None


def media_url(task: Task, variant: str) -> SignedUrl | None:
    """A signed link to one variant of the task's copy, None when there is no copy."""
    if variant not in task.stored_variants:
        return None
    signer = current_signer()
    if signer is None:
        return None
    return signer.sign(task.video_id, variant, base=request_origin())


REFERENCE = "reference"  # the variant name of a task's reference image (image-to-video)


def reference_url(task: Task) -> str | None:
    """A signed link to the reference image an image-to-video task was created with."""
    signer = current_signer()
    if task.media_type != "IMAGE" or signer is None:
        return None
    return signer.sign(task.video_id, REFERENCE, base=request_origin()).url


def content_status(task: Task) -> str | None:
    """STORED (copy present), EXPIRED (removed: retention, or lost upstream), PENDING_SPACE
    (finished upstream, waiting for room in our content store), else None."""
    if task.content_pending_since is not None and not task.terminal:
        return "PENDING_SPACE"
    if task.content_expired_at is not None:
        return "EXPIRED"
    if task.content_stored_at is not None:
        return "STORED"
    return None


def content_fields(task: Task) -> dict[str, object]:
    """The media fields of a task's representation."""
    video = media_url(task, "video")
    thumbnail = media_url(task, "thumbnail")
    return {
        "videoUrl": video.url if video else None,
        "thumbnailUrl": thumbnail.url if thumbnail else None,
        "contentStatus": content_status(task),
        "contentExpiredAt": iso(task.content_expired_at),
    }
