"""Signing in with a FactPulse account: one JWT per process, renewed in time and after a 401."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from factpulse_tasks import auth
from factpulse_tasks.auth import TokenAuth, shared_token_auth, token_lifetime
from factpulse_tasks.client import FactPulseClient
from factpulse_tasks.exceptions import AuthenticationError
from factpulse_tasks.models import FactPulseTask
from factpulse_tasks.polling import poll_due
from factpulse_tasks.testing import FakeFactPulse, answers

USERNAME = "compta@example.fr"
PASSWORD = "pa55-w0rd-7d1c"


@pytest.fixture(autouse=True)
def fresh_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no token shared in the process."""
    monkeypatch.setattr(auth, "_shared", {})


@pytest.fixture
def account() -> Iterator[FakeFactPulse]:
    """A fake FactPulse without API key, whose tokens live 2 seconds."""
    with FakeFactPulse(api_key=None, username=USERNAME, password=PASSWORD,
                       token_lifetime=2) as fake:
        yield fake


@pytest.fixture
def configured(account: FakeFactPulse, settings: Any, tmp_path: Any) -> FakeFactPulse:
    settings.FACTPULSE_TASKS = {
        "BASE_URL": account.base_url, "USERNAME": USERNAME, "PASSWORD": PASSWORD,
        "POLL_INTERVAL": 0, "POLL_MAX_INTERVAL": 0, "READ_TIMEOUT": 2, "CONNECT_TIMEOUT": 2,
    }
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return account


def routes(fake: FakeFactPulse) -> list[tuple[str, int | None]]:
    return [(r.route, r.status) for r in fake.requests]


def token_requests(fake: FakeFactPulse) -> int:
    return sum(1 for r in fake.requests if r.route == "token")


def track(fake: FakeFactPulse, *script: answers.Answer) -> str:
    task_id = str(uuid.uuid4())
    fake.script(task_id, *script)
    FactPulseTask.objects.track(task_id, "validation")
    return task_id


@pytest.mark.django_db(transaction=True)
def test_a_cycle_of_concurrent_calls_fetches_one_token(configured: FakeFactPulse) -> None:
    for _ in range(12):
        track(configured, answers.validation_success())
    report = poll_due()
    assert report.succeeded == 12
    assert token_requests(configured) == 1
    assert ("status", 401) not in routes(configured)


@pytest.mark.django_db(transaction=True)
def test_later_cycles_reuse_the_token_of_the_process(configured: FakeFactPulse) -> None:
    track(configured, answers.pending(), answers.validation_success())
    poll_due()
    poll_due()
    assert routes(configured) == [("token", 200), ("status", 200), ("status", 200)]


@pytest.mark.django_db(transaction=True)
def test_a_token_is_renewed_before_it_runs_out(configured: FakeFactPulse) -> None:
    track(configured, answers.pending(), answers.pending(), answers.validation_success())
    poll_due()
    time.sleep(1.6)  # 0.4 s left of 2: within the margin of a quarter of its life
    poll_due()
    assert routes(configured) == [("token", 200), ("status", 200), ("token", 200),
                                  ("status", 200)]


@pytest.mark.django_db(transaction=True)
def test_a_401_renews_the_token_once_and_the_call_goes_through(
    configured: FakeFactPulse,
) -> None:
    task_id = track(configured, answers.pending(), answers.validation_success())
    poll_due()
    configured.expire_tokens()  # revoked, or a clock far off: FactPulse says 401
    poll_due()
    assert routes(configured) == [("token", 200), ("status", 200), ("status", 401),
                                  ("token", 200), ("status", 200)]
    assert FactPulseTask.objects.get(task_id=task_id).state == FactPulseTask.State.SUCCEEDED


def test_a_token_refused_again_after_renewal_is_an_authentication_error() -> None:
    # Tokens that die at once: the renewed one is refused too, and it stops there.
    with FakeFactPulse(api_key=None, username=USERNAME, password=PASSWORD,
                       token_lifetime=0) as fake:
        client = FactPulseClient(fake.base_url, auth=TokenAuth(USERNAME, PASSWORD))
        with pytest.raises(AuthenticationError, match="USERNAME"):
            client.get_json("/api/v1/processing/tasks/abc/status")
        assert routes(fake) == [("token", 200), ("status", 401), ("token", 200),
                                ("status", 401)]


def test_an_api_key_refused_is_not_asked_again(fake: FakeFactPulse) -> None:
    client = FactPulseClient(fake.base_url, "wrong-key-1b2c")
    before = fake.status_calls()
    with pytest.raises(AuthenticationError, match="API_KEY"):
        client.get_json("/api/v1/processing/tasks/abc/status")
    assert fake.status_calls() == before + 1


@pytest.mark.django_db(transaction=True)
def test_a_refused_account_leaves_tasks_as_they_are(
    configured: FakeFactPulse, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.FACTPULSE_TASKS = {**settings.FACTPULSE_TASKS, "PASSWORD": "wrong-pa55-93af"}
    task_id = track(configured, answers.validation_success())
    with caplog.at_level(logging.DEBUG):
        report = poll_due()
    assert report.refused == 1
    task = FactPulseTask.objects.get(task_id=task_id)
    assert task.state == FactPulseTask.State.PENDING
    assert "USERNAME" in task.last_error
    assert "wrong-pa55-93af" not in caplog.text + task.last_error
    assert routes(configured) == [("token", 401)]


def test_threads_sharing_a_client_wait_for_one_token(account: FakeFactPulse) -> None:
    client = FactPulseClient(account.base_url, auth=TokenAuth(USERNAME, PASSWORD), pool_size=16)
    with ThreadPoolExecutor(16) as pool:
        bodies = list(pool.map(
            lambda n: client.get_json(f"/api/v1/processing/tasks/t-{n}/status"), range(48)))
    assert [b["status"] for b in bodies] == ["PENDING"] * 48
    assert token_requests(account) == 1


def test_the_client_uid_is_sent_with_the_credentials(account: FakeFactPulse) -> None:
    token_auth = TokenAuth(USERNAME, PASSWORD, "client-42")
    FactPulseClient(account.base_url, auth=token_auth).get_json(
        "/api/v1/processing/tasks/abc/status")
    token = token_auth.headers(lambda credentials: {})["Authorization"].split()[1]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["client_uid"] == "client-42"


def test_one_token_auth_per_account_and_address() -> None:
    first = shared_token_auth("https://a.example", "u", "p")
    assert shared_token_auth("https://a.example", "u", "p") is first
    assert shared_token_auth("https://b.example", "u", "p") is not first
    assert shared_token_auth("https://a.example", "u", "changed") is not first
    assert shared_token_auth("https://a.example", "u", "p", "uid") is not first


@pytest.mark.parametrize(
    ("token", "lifetime"),
    [
        ("not-a-jwt", auth.DEFAULT_TOKEN_LIFETIME),
        ("a.%%%.c", auth.DEFAULT_TOKEN_LIFETIME),
        ("a." + base64.urlsafe_b64encode(b'{"exp": 100}').decode() + ".c",
         auth.DEFAULT_TOKEN_LIFETIME),
        ("a." + base64.urlsafe_b64encode(b'{"exp": 100, "iat": 200}').decode() + ".c",
         auth.DEFAULT_TOKEN_LIFETIME),
        ("a." + base64.urlsafe_b64encode(b'{"exp": 1900, "iat": 100}').decode().rstrip("=")
         + ".c", 1800.0),
    ],
)
def test_token_lifetime_comes_from_its_claims_or_the_documented_default(
    token: str, lifetime: float
) -> None:
    assert token_lifetime(token) == lifetime


def test_no_credential_or_token_shows_in_logs_reprs_or_errors(
    account: FakeFactPulse, caplog: pytest.LogCaptureFixture
) -> None:
    token_auth = TokenAuth(USERNAME, PASSWORD)
    client = FactPulseClient(account.base_url, auth=token_auth)
    with caplog.at_level(logging.DEBUG):
        client.get_json("/api/v1/processing/tasks/abc/status")
        account.expire_tokens()
        client.get_json("/api/v1/processing/tasks/abc/status")
        with pytest.raises(AuthenticationError) as refused:
            FactPulseClient(account.base_url, auth=TokenAuth(USERNAME, "nope-x1")).get_json("/x")
    token = token_auth.headers(lambda credentials: {})["Authorization"].split()[1]
    shown = caplog.text + repr(client) + repr(token_auth) + str(refused.value) + repr(
        refused.value)
    for secret in (PASSWORD, "nope-x1", token, token.split(".")[2]):
        assert secret not in shown


def test_a_refused_account_is_not_asked_again_for_a_while(
    account: FakeFactPulse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "REFUSED_COOLDOWN", 0.5)
    token_auth = TokenAuth(USERNAME, "wrong-pa55-0c0c")
    client = FactPulseClient(account.base_url, auth=token_auth, pool_size=16)

    def call(n: int) -> str:
        try:
            client.get_json(f"/api/v1/processing/tasks/t-{n}/status")
        except AuthenticationError as exc:
            return type(exc).__name__
        return "ok"

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(call, range(16)))
    assert outcomes == ["AuthenticationError"] * 16
    assert routes(account) == [("token", 401)]
    time.sleep(0.6)  # the cooldown is over: the password may have been fixed meanwhile
    assert call(99) == "AuthenticationError"
    assert routes(account) == [("token", 401), ("token", 401)]


@pytest.mark.parametrize("claims", [
    '{"exp": 1' + "0" * 400 + ', "iat": 0}',  # a float() overflow
    '{"exp": ' + "[" * 5000 + "]" * 5000 + ', "iat": 0}',  # nesting past the recursion limit
    '{"exp": NaN, "iat": 0}',
])
def test_a_token_with_unreadable_claims_lives_the_default_lifetime(claims: str) -> None:
    from factpulse_tasks.auth import DEFAULT_TOKEN_LIFETIME

    payload = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
    assert token_lifetime(f"header.{payload}.signature") == DEFAULT_TOKEN_LIFETIME
