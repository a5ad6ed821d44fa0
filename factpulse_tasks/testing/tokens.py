"""Access and refresh tokens issued by the fake ``POST /api/token/`` endpoint.

Tokens look like JWTs (``header.payload.signature`` with ``exp``, ``iat``, ``jti`` and
``token_type`` claims, HS256 with a key made up per store) so a client that reads
``exp`` works, but the store decides validity: a token is valid while it is known and
its lifetime, measured on the monotonic clock, has not run out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from typing import Any

__all__ = ["REFRESH_LIFETIME", "TokenStore"]

#: Refresh tokens live 7 days, as at FactPulse.
REFRESH_LIFETIME = 7 * 24 * 3600.0


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenStore:
    """Thread-safe issue and check of tokens."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = float(lifetime)
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._access: dict[str, float] = {}

    def _make(self, token_type: str, lifetime: float, claims: dict[str, Any]) -> str:
        now = int(time.time())
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = {
            **claims,
            "token_type": token_type,
            "iat": now,
            "exp": now + int(lifetime),
            "jti": secrets.token_hex(16),
        }
        payload = _b64url(json.dumps(body, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        signature = _b64url(hmac.new(self._key, signing_input, hashlib.sha256).digest())
        return f"{header}.{payload}.{signature}"

    def issue(self, *, client_uid: str | None = None) -> dict[str, str]:
        """Return a new ``{"access", "refresh"}`` pair."""
        claims: dict[str, Any] = {"user_id": 1}
        if client_uid:
            claims["client_uid"] = client_uid
        access = self._make("access", self.lifetime, claims)
        refresh = self._make("refresh", REFRESH_LIFETIME, claims)
        now = time.monotonic()
        with self._lock:
            self._access[access] = now + self.lifetime
        return {"access": access, "refresh": refresh}

    def is_valid(self, access_token: str) -> bool:
        """Whether ``access_token`` was issued here and has not expired."""
        with self._lock:
            expires_at = self._access.get(access_token)
            if expires_at is None:
                return False
            if expires_at <= time.monotonic():
                del self._access[access_token]
                return False
            return True

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far invalid."""
        with self._lock:
            self._access.clear()
