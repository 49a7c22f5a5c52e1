"""How many modules a reader follows from an identify's HTTP route to its outbound request
(issue 20: at most 8), measured on the running service rather than counted by hand.

One identify goes through the real service on SQLite (routes, store, workers, planner, executor,
client), with Gainsight replaced by an in-process transport. At each step of its way (the store
writes the event, a worker claims it, the mapping engine maps it, the client sends it) the
package's modules on the call stack are read. A task started on the way counts the stack that
started it, and a job the store's writer thread runs counts the stack that submitted it, so no
hop is hidden by a thread or a task. Frames above the route's endpoint (middleware, the server)
are not the identify's path. Helpers that return before the next step (parsing, the budget gate,
rendering) are side trips, not the path.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

import destination
from destination.api import ingest
from destination.app import create_app
from destination.delivery.sqlite_writer import SQLiteWriter
from destination.settings import Settings

PACKAGE = str(Path(destination.__file__).parent) + "/"
MAX_MODULES = 8
IDENTIFY = {
    "type": "identify",
    "userId": "u1",
    "messageId": "path-1",
    "traits": {"email": "ada@example.com", "name": "Ada"},
}


class Path_:
    """The modules seen on the stack at each step, in the order first seen."""

    def __init__(self) -> None:
        self.steps: dict[str, list[str]] = {}
        self.recording = False
        self.route_file = ""
        self.submitted = threading.local()  # the writer thread: the stack that submitted its job
        self.parents: dict[asyncio.Task[Any], asyncio.Task[Any] | None] = {}

    def modules(self, frame: FrameType | None) -> list[str]:
        inner: list[str] = []
        while frame is not None:
            name = frame.f_code.co_filename
            if name.startswith(PACKAGE):
                inner.append(name.removeprefix(PACKAGE))
            frame = frame.f_back
        chain = [*getattr(self.submitted, "modules", []), *self._task_origins(), *reversed(inner)]
        route = self.route_file.removeprefix(PACKAGE)
        if route in chain:
            chain = chain[chain.index(route) :]
        return list(dict.fromkeys(chain))

    def _task_origins(self) -> list[str]:
        """The stacks that started the current task and the tasks before it (on the way only)."""
        try:
            task: asyncio.Task[Any] | None = asyncio.current_task()
        except RuntimeError:  # not in the event loop's thread
            return []
        origins: list[str] = []
        while task is not None and task in self.parents:
            started = getattr(task, "_source_traceback", None) or []
            origins = [
                f.filename.removeprefix(PACKAGE) for f in started if f.filename.startswith(PACKAGE)
            ] + origins
            task = self.parents[task]
        return origins

    def see(self, step: str, frame: FrameType | None) -> None:
        if self.recording and step not in self.steps:
            self.steps[step] = self.modules(frame)

    def union(self) -> list[str]:
        return list(dict.fromkeys(m for modules in self.steps.values() for m in modules))


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path_]:
    path = Path_()
    connect = sqlite3.connect

    def traced_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)

        def statement(sql: str) -> None:
            words = " ".join(sql.split()).upper()
            if "INSERT INTO EVENTS" in words:
                path.see("store", sys._getframe(1))
            elif "UPDATE EVENTS" in words and "'LEASED'" in words:
                path.see("claim", sys._getframe(1))

        conn.set_trace_callback(statement)
        return conn

    run = SQLiteWriter.run

    async def traced_run(self: SQLiteWriter, job: Callable[[sqlite3.Connection], Any], **options: Any) -> Any:
        submitted = path.modules(sys._getframe(1))

        def linked(conn: sqlite3.Connection) -> Any:
            path.submitted.modules = submitted
            try:
                return job(conn)
            finally:
                path.submitted.modules = []

        return await run(self, linked, **options)

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.endswith("/mapping/engine.py"):
            path.see("map", frame)

    monkeypatch.setattr(sqlite3, "connect", traced_connect)
    monkeypatch.setattr(SQLiteWriter, "run", traced_run)
    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        yield path
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]


def test_an_identify_reaches_gainsight_through_at_most_eight_modules(traced: Path_, tmp_path: Path) -> None:
    sent: list[str] = []

    def gainsight(request: httpx.Request) -> httpx.Response:
        traced.see("send", sys._getframe(1))
        sent.append(f"{request.method} {request.url.path}")
        return httpx.Response(200, json={"result": True, "data": {"records": [{"Gsid": "p1"}]}})

    destinations = tmp_path / "destinations.json"
    config = {"domain": "acme.gainsightcloud.com", "accessKey": "ak", "sharedSecret": "ss", "tenantId": "t"}
    destinations.write_text(
        json.dumps({"destinations": [{"id": "acme", "writeKeys": ["wk"], "config": config}]})
    )
    settings = Settings(
        destinations=destinations, store_url=f"sqlite:///{tmp_path}/gsd.sqlite3", log_level="warning"
    )
    app = create_app(settings, transport=httpx.MockTransport(gainsight))
    route = next(r for r in ingest.router.routes if isinstance(r, APIRoute) and r.path == "/v1/identify")
    traced.route_file = route.endpoint.__code__.co_filename

    async def deliver_one() -> None:
        loop = asyncio.get_running_loop()

        def task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Task[Any]:
            task = asyncio.Task(coro, loop=loop, **options)
            if traced.recording:
                traced.parents[task] = asyncio.current_task(loop)
            return task

        loop.set_task_factory(task_factory)  # type: ignore[arg-type]
        async with app.router.lifespan_context(app):
            traced.recording = True
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                answer = await client.post("/v1/identify", auth=("wk", ""), json=IDENTIFY)
            assert answer.status_code == 200, answer.text
            for _ in range(500):
                if sent:
                    break
                await asyncio.sleep(0.01)

    asyncio.run(deliver_one(), debug=True)  # debug: each task keeps the stack that started it

    assert sent == ["PUT /v1.0/api/people"]
    assert list(traced.steps) == ["store", "claim", "map", "send"], traced.steps
    followed = traced.union()
    described = "\n".join(f"{step}: {' > '.join(modules)}" for step, modules in traced.steps.items())
    assert followed[0] == "api/ingest.py", described
    assert len(followed) <= MAX_MODULES, f"{len(followed)} modules:\n{described}"
