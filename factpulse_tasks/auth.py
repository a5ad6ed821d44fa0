"""How requests to FactPulse prove who sends them: an API key, or a JWT from an account.

A JWT comes from ``POST /api/token/`` with ``{"username", "password", "client_uid"?}``
and lives 30 minutes at FactPulse. :class:`TokenAuth` keeps one per account and
process, shared by every thread and every client (each polling cycle builds its
own client), renews it shortly before it runs out, and drops it when FactPulse
answers 401 so that the next call fetches a new one. No token, password or key
ever reaches a log line, a ``repr`` or an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .exceptions import AuthenticationError, TransportError

TOKEN_PATH = "/api/token/"
# What FactPulse documents, for a token whose claims cannot be read.
DEFAULT_TOKEN_LIFETIME = 30 * 60.0
# A token is renewed this long before it runs out (at most a quarter of its life).
RENEW_MARGIN = 60.0
# Seconds during which refused credentials are not sent again: a burst of calls
# must not become a burst of failed sign-ins, which may lock the account.
REFUSED_COOLDOWN = 10.0

# Fetches a token: takes the JSON credentials, returns the decoded answer.
TokenFetcher = Callable[[Mapping[str, str]], Mapping[str, Any]]


class ApiKeyAuth:
    """Sends ``X-API-Key``; nothing to renew."""

    hint = "check FACTPULSE_TASKS['API_KEY']"

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def __repr__(self) -> str:
        return "<ApiKeyAuth>"

    def headers(self, fetch: TokenFetcher) -> dict[str, str]:
        """The headers that authenticate one request."""
        return {"X-API-Key": self._api_key}

    def refused(self, headers: Mapping[str, str]) -> bool:
        """FactPulse answered 401 to ``headers``; True if asking again may work."""
        return False


class TokenAuth:
    """Sends ``Authorization: Bearer <JWT>``, fetching and renewing the token as needed.

    Thread-safe: while one thread fetches a token the others wait for it, so a
    batch of concurrent calls makes one token request; if that request fails,
    the threads that waited for it get its error rather than asking again, and
    refused credentials are not sent again for ``REFUSED_COOLDOWN`` seconds. Build it with
    :func:`shared_token_auth` to share it across the clients of a process.
    """

    hint = "check FACTPULSE_TASKS['USERNAME'] and FACTPULSE_TASKS['PASSWORD']"

    def __init__(self, username: str, password: str, client_uid: str = "") -> None:
        self.username = username
        self._password = password
        self._client_uid = client_uid
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._failure: tuple[float, TransportError] | None = None
        self.fetched = 0  # tokens fetched so far, for tests and monitoring

    def __repr__(self) -> str:
        return f"<TokenAuth {self.username!r}>"

    def headers(self, fetch: TokenFetcher) -> dict[str, str]:
        """The headers that authenticate one request; fetches a token when needed.

        Raises what ``fetch`` raises (:class:`AuthenticationError` for refused
        credentials, a :class:`~factpulse_tasks.exceptions.TransportError` otherwise).
        """
        waiting_since = time.monotonic()
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                failure = self._failure
                if failure is not None and (
                    failure[0] >= waiting_since
                    or (isinstance(failure[1], AuthenticationError)
                        and time.monotonic() - failure[0] < REFUSED_COOLDOWN)
                ):
                    # The request another thread just made failed, or the account was
                    # refused a moment ago: asking again now would only repeat it.
                    raise failure[1]
                try:
                    self._renew(fetch)
                except TransportError as exc:
                    self._failure = (time.monotonic(), exc)
                    raise
            assert self._token is not None
            return {"Authorization": f"Bearer {self._token}"}

    def refused(self, headers: Mapping[str, str]) -> bool:
        """FactPulse answered 401 to ``headers``: forget that token; True to ask once more."""
        sent = headers.get("Authorization", "").removeprefix("Bearer ")
        with self._lock:
            if sent and sent == self._token:
                self._token = None
        return True

    def _renew(self, fetch: TokenFetcher) -> None:
        credentials = {"username": self.username, "password": self._password}
        if self._client_uid:
            credentials["client_uid"] = self._client_uid
        asked_at = time.monotonic()
        answer = fetch(credentials)
        access = answer.get("access")
        if not isinstance(access, str) or not access or not access.isascii() or any(
            c.isspace() for c in access
        ):
            raise AuthenticationError(
                f"FactPulse answered {TOKEN_PATH} without a usable access token."
            )
        lifetime = token_lifetime(access)
        self._token = access
        self._renew_at = asked_at + lifetime - min(RENEW_MARGIN, lifetime / 4)
        self.fetched += 1


def token_lifetime(token: str) -> float:
    """Seconds a JWT lives, from its ``exp`` and ``iat`` claims (not verified).

    Measured from issue to expiry rather than against this machine's clock, so
    a clock that is off does not matter. Tokens whose claims cannot be read
    count as living :data:`DEFAULT_TOKEN_LIFETIME`.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        lifetime = float(claims["exp"]) - float(claims["iat"])
    except (IndexError, KeyError, TypeError, ValueError, binascii.Error, OverflowError,
            RecursionError):  # huge numbers, deep nesting: claims from a broken server
        return DEFAULT_TOKEN_LIFETIME
    if not 0 <= lifetime <= 366 * 24 * 3600:  # also refuses NaN
        return DEFAULT_TOKEN_LIFETIME
    return lifetime


_shared: dict[tuple[str, str, str, str], TokenAuth] = {}
_shared_lock = threading.Lock()


def _forget_after_fork() -> None:
    # A forked child (a Celery prefork worker) starts with fresh locks and asks for
    # its own token: a lock held by a thread of the parent would never be released.
    global _shared_lock
    _shared.clear()
    _shared_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def shared_token_auth(
    base_url: str, username: str, password: str, client_uid: str = ""
) -> TokenAuth:
    """The process-wide :class:`TokenAuth` of one account on one FactPulse address."""
    # Keyed by a digest of the password so that a changed password gets a new token.
    digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
    key = (base_url, username, client_uid, digest)
    with _shared_lock:
        auth = _shared.get(key)
        if auth is None:
            auth = _shared[key] = TokenAuth(username, password, client_uid)
        return auth
