"""The fake FactPulse in a process of its own, driven through a pipe.

A benchmark that ran the fake in its own process would measure the fake too:
both would share one interpreter lock. Here the fake answers from another
process, and the benchmark scripts it with small messages.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from factpulse_tasks.testing import FakeFactPulse, answers

# An answer travels as the name of its builder in factpulse_tasks.testing.answers
# and the builder's keyword arguments: answers themselves do not pickle.
AnswerSpec = tuple[str, dict[str, Any]]


def spec(builder: str, **kwargs: Any) -> AnswerSpec:
    """An answer to send to the remote fake: ``spec("pending")``."""
    return builder, kwargs


def _build(specs: Sequence[AnswerSpec]) -> list[answers.Answer]:
    return [getattr(answers, name)(**kwargs) for name, kwargs in specs]


def _serve(pipe: Connection, api_key: str, latency: float) -> None:
    with FakeFactPulse(api_key=api_key, latency=latency) as fake:
        pipe.send(fake.base_url)
        while True:
            command, *args = pipe.recv()
            if command == "stop":
                pipe.send(None)
                return
            if command == "script":
                ids, specs = args
                script = _build(specs)
                for task_id in ids:
                    fake.script(task_id, *script)
                pipe.send(None)
            elif command == "until":
                finishing, *pair = args
                before, after = _build(pair)
                for task_id, finish_at in finishing:
                    fake.script_until(task_id, finish_at, before, after)
                pipe.send(None)
            elif command == "stats":
                pipe.send({"status_calls": fake.status_calls(),
                           "max_in_flight": fake.max_in_flight, "errors": len(fake.errors)})
            elif command == "latency":
                fake.latency = args[0]
                pipe.send(None)


class RemoteFake:
    """Start with ``RemoteFake(api_key, latency)``; stop with :meth:`stop`."""

    def __init__(self, api_key: str, latency: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, api_key, latency),
                                        daemon=True)
        self._process.start()
        self.base_url: str = self._pipe.recv()

    def _call(self, *message: Any) -> Any:
        self._pipe.send(message)
        return self._pipe.recv()

    def script(self, ids: Sequence[str], *specs: AnswerSpec) -> None:
        self._call("script", list(ids), specs)

    def script_until(self, finishing: Sequence[tuple[str, float]], before: AnswerSpec,
                     after: AnswerSpec) -> None:
        self._call("until", list(finishing), before, after)

    def set_latency(self, seconds: float) -> None:
        self._call("latency", seconds)

    def stats(self) -> dict[str, int]:
        stats: dict[str, int] = self._call("stats")
        return stats

    def stop(self) -> None:
        self._call("stop")
        self._process.join(10)
