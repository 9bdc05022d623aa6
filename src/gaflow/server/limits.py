"""What keeps the explorer responsive: a bounded job queue in front of the model, and a
request-body size limit.

* :class:`JobQueue`: one worker thread runs the explanations in arrival order (the model is not
  re-entrant); at most ``1 + queue_size`` jobs are admitted at a time, and one more is refused
  at once (:class:`Busy`, HTTP 503 "busy, retry") instead of waiting behind the others. A job
  whose time limit passed while it waited is dropped unrun. A running solve has no point at
  which it could be interrupted, so the time limit bounds how long a request waits for its
  answer; the work it started finishes in the background and frees its slot.
* :class:`BodyLimit`: an ASGI middleware that answers 413 to a body larger than ``max_bytes``:
  from the ``Content-Length`` header before any byte of the body is read, or, for a chunked
  body, as soon as the bytes read pass the limit.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor


class Busy(Exception):
    """Every slot of the queue is taken."""


class Expired(Exception):
    """The job's time limit passed before the worker reached it."""


class JobQueue:
    """A single worker thread and a bounded number of admitted jobs (running + waiting)."""

    def __init__(self, queue_size: int = 4):
        if queue_size < 0:
            raise ValueError("queue_size must be >= 0")
        self.capacity = 1 + queue_size
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gaflow-explain")
        self._lock = threading.Lock()
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Jobs running or waiting now."""
        return self._admitted

    def submit(self, fn, deadline: float) -> Future:
        """Run ``fn()`` on the worker; raise :class:`Busy` when no slot is free. ``deadline``
        (``time.monotonic()`` seconds): a job not started by then ends in :class:`Expired`."""
        if not self._slots.acquire(blocking=False):
            raise Busy
        with self._lock:
            self._admitted += 1

        def job():
            if time.monotonic() > deadline:
                raise Expired
            return fn()

        try:
            fut = self._pool.submit(job)
        except BaseException:
            self._release(None)
            raise
        fut.add_done_callback(self._release)  # also called for a job cancelled while waiting
        return fut

    def _release(self, _fut) -> None:
        with self._lock:
            self._admitted -= 1
        self._slots.release()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class BodyLimit:
    """ASGI middleware: 413 for request bodies above ``max_bytes``."""

    def __init__(self, app, max_bytes: int = 64 * 1024):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                await self._answer(send, 400, "the Content-Length header is not a number")
                return
            if n > self.max_bytes:  # refused before reading a byte of the body
                await self._too_large(send, n)
                return
        chunks, total = [], 0
        while True:  # read at most max_bytes (+ one chunk), then hand the body on
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                await self._too_large(send, None)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send, n: int | None) -> None:
        size = f"{n} bytes" if n is not None else f"more than {self.max_bytes} bytes"
        await self._answer(
            send, 413, f"the request body has {size}; the limit is {self.max_bytes} bytes"
        )

    @staticmethod
    async def _answer(send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
