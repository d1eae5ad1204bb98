"""What the HTTP server refuses before Gradio reads a byte: sign-in guessing, and floods of its upload route.

`Guard` is an ASGI middleware that `app.serve` puts in front of Gradio's own routes (through `launch`'s
`app_kwargs`); it looks at two of them only and passes every other request through untouched.

- **Sign-in** (`POST /login`): after `signin_free_tries` wrong passwords for one user name, or from one
  address, each further try is held back 1 s, then 2, 4, ... up to `signin_max_wait_s` before it is checked
  (held, not refused: Gradio's login page shows any refusal as "Incorrect credentials", so a person who types
  the right password simply waits a moment). One try at a time per name and per address: another that comes
  meanwhile gets 429 and one sentence, so parallel connections do not multiply the guesses. A right password
  resets both counts, and failures older than 15 minutes are forgotten: the real user is slowed down while
  someone guesses, never locked out.
- **Uploads** (`POST /gradio_api/upload`): Gradio stores whatever its upload route is sent (up to
  `max_file_size` a file, 1,000 files a request) before any event handler sees it. Here each address may send
  `upload_requests_per_minute` requests and `upload_mb_per_hour` MB, and all addresses together
  `upload_total_mb` MB an hour; a request must say its length, which is checked before its body is read. The
  files one request stored are counted after it, and those past `upload_files_per_hour` for that address are
  deleted at once and the request refused.

A request to Gradio's file route for an upload no longer kept answers 404 (Gradio says 403 "File not allowed").
A JSON request (an event of the page, an API call) holding a lone surrogate or a NUL in any string gets 422 and
one sentence naming the input, before Gradio or a handler sees it.

An address is the client's IP as the server sees it, or the first `X-Forwarded-For` entry when the operator
says the app runs behind a proxy (`--behind-proxy`: a Space does), since then every request comes from it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from gradio.utils import get_upload_folder

from answer.prompts import is_text
from core.settings import ServerSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FORGET_S = 15 * 60  # failed sign-ins older than this no longer count
_MAX_KEYS = 50_000  # the most names and addresses remembered at once (the oldest go first)


class _Failures:
    """Failed sign-ins per key (a user name or an address): count and time of the last one."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[int, float]] = {}

    def wait_s(self, key: str, now: float, free: int, cap: float) -> float:
        count, last = self.seen.get(key, (0, 0.0))
        if count < free or now - last > FORGET_S:
            return 0.0
        return max(0.0, last + min(cap, 2.0 ** (count - free)) - now)

    def fail(self, key: str, now: float) -> None:
        count, last = self.seen.pop(key, (0, 0.0))
        self.seen[key] = (1 if now - last > FORGET_S else count + 1, now)
        while len(self.seen) > _MAX_KEYS:
            self.seen.pop(next(iter(self.seen)))

    def forget(self, key: str) -> None:
        self.seen.pop(key, None)


class _Window:
    """Amounts per key over a sliding window (requests, files, bytes)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.events: dict[str, deque[tuple[float, float]]] = defaultdict(deque)

    def total(self, key: str, now: float) -> float:
        events = self.events.get(key)
        if not events:
            return 0.0
        while events and now - events[0][0] > self.seconds:
            events.popleft()
        if not events:
            del self.events[key]
            return 0.0
        return sum(amount for _, amount in events)

    def add(self, key: str, now: float, amount: float) -> None:
        self.events[key].append((now, amount))
        while len(self.events) > _MAX_KEYS:
            self.events.pop(next(iter(self.events)))


class Guard:
    """The ASGI middleware; see the module docstring."""

    def __init__(self, app: Callable, server: ServerSettings, clock: Callable[[], float] = time.monotonic):
        """`server`: the limits (`core.settings.ServerSettings`, where their defaults live); on a Space
        (`SPACE_ID` set) the app is behind a proxy whatever `behind_proxy` says."""
        self.app, self.limits, self.clock = app, server, clock
        self.behind_proxy = server.behind_proxy or bool(os.environ.get("SPACE_ID"))
        self.upload_folder = get_upload_folder()  # Gradio's cache: refused files are deleted only from inside it
        self.lock = threading.Lock()
        self.signin = _Failures()
        self.trying: set[str] = set()  # names and addresses with a sign-in under way
        self.requests = _Window(60)
        self.files = _Window(3600)
        self.bytes = _Window(3600)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD") and self._gone(scope):
            return await _reply(send, 404, "This file is no longer kept.")
        if scope["type"] == "http" and scope.get("method") == "POST":
            path = scope.get("path", "").rstrip("/")
            if path.endswith("/login") or path == "/login":
                return await self._sign_in(scope, receive, send)
            if path.endswith("/gradio_api/upload"):
                return await self._upload(scope, receive, send)
            if "/gradio_api/" in path and _header(scope, b"content-type").startswith("application/json"):
                return await self._text_only(scope, receive, send)
        await self.app(scope, receive, send)

    # -- text that is not text --------------------------------------------------------------------
    async def _text_only(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A JSON request whose strings hold a lone surrogate or a NUL (raw HTTP can send both as escapes) is
        refused with one sentence naming the input, before Gradio checks a choice or any handler runs: one rule
        for every field of the page's events and of the API, so no tokenizer, file name or JSON file on disk
        ever gets one."""
        body, more = await _read_body(receive, MAX_JSON_BYTES)
        if not more and _ESCAPES.search(body):
            try:
                value = json.loads(body)
            except (ValueError, RecursionError):
                value = None
            if _holds_not_text(value):
                return await _reply(send, 422, _not_text_sentence(scope.get("path", ""), value))
        await self.app(scope, _replay(body, receive, more), send)

    def _gone(self, scope: Scope) -> bool:
        """Whether the request asks Gradio's file route for an upload that is no longer in Gradio's upload folder
        (deleted once added or refused: `discard`). Gradio would answer 403 "File not allowed"; inside its own
        upload folder a missing file is simply gone (a kept one is served, so 404 reveals nothing more)."""
        path = scope.get("path", "")
        marker = "/gradio_api/file="
        if marker not in path:
            return False
        wanted = path.split(marker, 1)[1]  # the server has already decoded the path
        try:
            root = Path(self.upload_folder).resolve()
            target = Path(wanted).resolve()
        except (OSError, ValueError):
            return False
        return target != root and target.is_relative_to(root) and not target.exists()

    # -- who is asking ----------------------------------------------------------------------------
    def address(self, scope: Scope) -> str:
        if self.behind_proxy:
            forwarded = _header(scope, b"x-forwarded-for")
            if forwarded:
                return forwarded.split(",")[0].strip()[:64]
        client = scope.get("client")
        return str(client[0]) if client else "unknown"

    # -- sign-in ----------------------------------------------------------------------------------
    async def _sign_in(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, more = await _read_body(receive, 64 * 1024)
        if more:
            return await _reply(send, 413, "The sign-in form is too large.")
        fields = parse_qs(body.decode("utf-8", "replace"))
        user = "user:" + (fields.get("username") or [""])[0].strip().lower()[:200]
        where = "addr:" + self.address(scope)
        limits = self.limits
        with self.lock:  # never held across an await: the event loop would stop with it
            busy = user in self.trying or where in self.trying  # one try at a time per name and per address
            if not busy:
                wait = max(
                    self.signin.wait_s(k, self.clock(), limits.signin_free_tries, limits.signin_max_wait_s)
                    for k in (user, where)
                )
                self.trying.update((user, where))
        if busy:
            return await _reply(
                send, 429, "Another sign-in for this name or from this address is under way; try again."
            )
        try:
            if wait > 0:  # the try is held back, not refused: a person at the login page just waits a moment
                await asyncio.sleep(wait)
            status: list[int] = []

            async def watch(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status.append(int(message["status"]))
                await send(message)

            await self.app(scope, _replay(body, receive), watch)
            with self.lock:
                if status and status[0] < 300:
                    self.signin.forget(user)
                    self.signin.forget(where)
                elif status and status[0] == 400:  # Gradio's "Incorrect credentials"
                    self.signin.fail(user, self.clock())
                    self.signin.fail(where, self.clock())
        finally:
            with self.lock:
                self.trying.difference_update((user, where))

    # -- uploads ----------------------------------------------------------------------------------
    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        limits, where, now = self.limits, self.address(scope), self.clock()
        length = _header(scope, b"content-length")
        if not length or not length.isdigit():
            return await _reply(send, 411, "An upload must say its length (Content-Length).")
        size = int(length)
        mb = 2**20
        refusal: tuple[int, str] | None = None
        with self.lock:  # never held across an await
            if self.requests.total(where, now) >= limits.upload_requests_per_minute:
                refusal = 429, "Too many uploads in a minute; wait a moment and try again."
            elif self.files.total(where, now) >= limits.upload_files_per_hour:
                refusal = 429, "Too many files uploaded in the last hour; try again later."
            elif self.bytes.total(where, now) + size > limits.upload_mb_per_hour * mb:
                refusal = 429, f"Uploads from you are over {limits.upload_mb_per_hour:g} MB this hour; try again later."
            elif self.bytes.total("*", now) + size > limits.upload_total_mb * mb:
                refusal = 503, "The app takes no more uploads this hour; try again later."
            else:
                self.requests.add(where, now, 1)
                self.bytes.add(where, now, size)
                self.bytes.add("*", now, size)
        if refusal is not None:
            return await _reply(send, *refusal)
        start: list[Message] = []
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:  # the reply is held until the files are counted
            if message["type"] == "http.response.start":
                start.append(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    await self._after_upload(where, start[0], b"".join(chunks), send)

        await self.app(scope, receive, hold)

    async def _after_upload(self, where: str, start: Message, body: bytes, send: Send) -> None:
        stored = _paths(body) if int(start["status"]) == 200 else []
        with self.lock:
            room = max(0, int(self.limits.upload_files_per_hour - self.files.total(where, self.clock())))
            if len(stored) <= room:
                self.files.add(where, self.clock(), len(stored))
        if len(stored) > room:
            discard(stored, self.upload_folder)
            return await _reply(
                send, 429, f"Too many files at once: {self.limits.upload_files_per_hour} an hour may be uploaded."
            )
        await send(start)
        await send({"type": "http.response.body", "body": body})


def discard(paths: Iterable[str], folder: str | None = None) -> int:
    """Delete Gradio's stored copies of uploaded files (and their folder when it is left empty); a path outside
    Gradio's upload folder (`folder`, by default the one Gradio uses) is never touched. Returns how many went."""
    root = Path(folder or get_upload_folder()).resolve()
    gone = 0
    for raw in paths:
        try:
            path = Path(str(raw)).resolve()
        except (OSError, ValueError):
            continue
        if path == root or not path.is_relative_to(root) or not path.is_file():
            continue
        try:
            path.unlink()
            gone += 1
            if path.parent != root and not any(path.parent.iterdir()):
                path.parent.rmdir()
        except OSError:
            continue
    return gone


def _paths(body: bytes) -> list[str]:
    try:
        value = json.loads(body)
    except ValueError:
        return []
    return [p for p in value if isinstance(p, str)] if isinstance(value, list) else []


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return ""


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The request body, up to `limit` bytes; (body, whether there was more)."""
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body, False
        body += message.get("body", b"")
        if len(body) > limit:
            return body, True
        if not message.get("more_body"):
            return body, False


MAX_JSON_BYTES = 16 * 2**20
"""The most of a JSON request that is read to look for text that is not text; a longer one passes unread."""
_ESCAPES = re.compile(rb"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")
"""A JSON escape of a UTF-16 surrogate or of NUL: only then is the body parsed (a pair, as in an emoji, is fine)."""


def _holds_not_text(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return not is_text(value)
    if depth > 64:
        return False
    if isinstance(value, dict):
        return any(_holds_not_text(k, depth + 1) or _holds_not_text(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_not_text(v, depth + 1) for v in value)
    return False


def _not_text_sentence(path: str, value: Any) -> str:
    """One sentence naming the input (by its position, and the endpoint when the path names it)."""
    where = "this request"
    if "/call/" in path or "/run/" in path:
        where = "/" + path.rsplit("/call/" if "/call/" in path else "/run/", 1)[1].split("/")[0][:60]
    data = value.get("data") if isinstance(value, dict) else None
    if isinstance(data, list):
        for n, item in enumerate(data, 1):
            if _holds_not_text(item):
                return f"Input {n} of {where} holds characters that are not text (a lone surrogate or a NUL)."
    return f"The body of {where} holds characters that are not text (a lone surrogate or a NUL)."


def _replay(body: bytes, then: Receive, more: bool = False) -> Receive:
    """The body already read, once; then the connection's own messages (the rest of the body when there was
    `more`, else a disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await then()

    return receive


async def _reply(send: Send, status: int, sentence: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": sentence, "error": sentence}).encode()
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # the connection ends with the refusal: the server does not read (or drain) the rest of a body
                # it refused, and a flooding client's connection cannot be reused for the next one
                (b"connection", b"close"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
