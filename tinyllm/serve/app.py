"""The HTTP side: a FastAPI app in front of the Engine.

GET /health, GET /v1/models, POST /v1/completions, POST /v1/chat/completions, GET / (the chat page).
Handlers parse and check the body (protocol.py), render and encode the prompt, check it fits the
context with max_tokens, hand one Job per choice to the engine and relay its events: as one JSON
response, or as server-sent events ending with `data: [DONE]`. A client that goes away (a closed
stream, or a dropped connection while waiting) cancels its jobs, which frees their slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from pathlib import Path

import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .engine import Engine, Job, QueueFull, ShuttingDown
from .protocol import ApiError, ParsedRequest, bad, parse_chat, parse_completion
from .render import render_chat
from .text import TextStream

PAGE = Path(__file__).resolve().parent / "static" / "index.html"
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions; chat runs to the context's end
DISCONNECT_POLL_S = 0.25


def error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


def create_app(engine: Engine, tokenizer, info: dict, model_id: str) -> FastAPI:
    """The FastAPI app: routes and error handlers; what they do is Api's (below)."""
    api = Api(engine, tokenizer, bool(info.get("is_qa")), model_id)

    async def lifespan(app):
        engine.start()
        yield
        engine.stop()  # after uvicorn's graceful wait: what is still running is cancelled

    app = FastAPI(title="tinyllm", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        return error_response(e)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
        return error_response(ApiError(e.status_code, f"{request.method} {request.url.path}: {e.detail}", code=code))

    @app.exception_handler(Exception)
    async def _bug(request, e: Exception):  # never a traceback to the client; the server goes on
        return error_response(ApiError(500, f"internal error: {type(e).__name__}: {e}", code="internal_error"))

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_id, "threads": torch.get_num_threads(), **engine.stats()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [api.model_card()]}

    @app.get("/v1/models/{name}")
    async def model(name: str):
        if name != model_id:
            raise ApiError(
                404, f"The model '{name}' does not exist; this server has '{model_id}'", "model", "model_not_found"
            )
        return api.model_card()

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = parse_completion(await read_json(request), model_id)
        return await api.serve(request, req, req.prompts, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = parse_chat(await read_json(request), model_id, api.is_qa)
        return await api.serve(request, req, [render_chat(req.messages, api.is_qa)], chat=True)

    return app


class Api:
    """What the OpenAI endpoints do: encode and check the prompt, submit the jobs to the engine,
    then collect the answers or stream them as server-sent events."""

    def __init__(self, engine: Engine, tokenizer, is_qa: bool, model_id: str):
        self.engine, self.tokenizer, self.is_qa, self.model_id = engine, tokenizer, is_qa, model_id
        self.ctx = engine.model.config.context_length
        self.created = int(time.time())
        self._mailbox: Mailbox | None = None

    def mailbox(self) -> Mailbox:
        """The Mailbox of the running event loop (one per loop: uvicorn runs one, tests may run others)."""
        loop = asyncio.get_running_loop()
        if self._mailbox is None or self._mailbox.loop is not loop:
            self._mailbox = Mailbox(loop)
        return self._mailbox

    def model_card(self) -> dict:
        return {
            "id": self.model_id,
            "object": "model",
            "created": self.created,
            "owned_by": "tinyllm",
            "context_length": self.ctx,
        }

    def encode(self, text: str, param: str, req: ParsedRequest) -> tuple[list[int], int]:
        """-> (prompt ids, max_tokens), or 400 when they do not fit the context."""
        ids = self.tokenizer.encode(text) or [self.tokenizer.bos_id]
        if len(ids) >= self.ctx:
            raise bad(
                param,
                f"{len(ids)} tokens do not fit the model's context of {self.ctx} tokens",
                "context_length_exceeded",
            )
        asked = req.sampling.max_tokens
        if asked is None:
            return ids, min(self.ctx - len(ids), COMPLETIONS_DEFAULT_MAX_TOKENS if param == "prompt" else self.ctx)
        if len(ids) + asked > self.ctx:
            raise bad(
                "max_tokens",
                f"the prompt's {len(ids)} tokens + max_tokens {asked} exceed the model's context of {self.ctx} tokens",
                "context_length_exceeded",
            )
        return ids, asked

    async def serve(self, request: Request, req: ParsedRequest, texts: list[str], chat: bool):
        mailbox = self.mailbox()
        events: asyncio.Queue = asyncio.Queue()
        jobs, prompt_tokens = [], 0
        for i, text in enumerate(texts):
            ids, max_tokens = self.encode(text, "messages" if chat else "prompt", req)
            prompt_tokens += len(ids)
            for j in range(req.n):
                index = i * req.n + j
                s = req.sampling
                jobs.append(
                    Job(
                        prompt_ids=ids,
                        max_tokens=max_tokens,
                        text=TextStream(self.tokenizer, s.stop, trim=chat and self.is_qa),
                        emit=mailbox.emitter(events, index),
                        temperature=s.temperature,
                        top_k=s.top_k,
                        top_p=s.top_p,
                        ignore_eos=s.ignore_eos,
                        seed=None
                        if s.seed is None
                        else s.seed + j,  # choice j: seed + j (choice 0 = `generate --seed`)
                    )
                )
        try:
            self.engine.submit(jobs)
        except QueueFull:
            e = ApiError(
                429,
                "the server is busy (request queue full); retry shortly",
                code="queue_full",
                err_type="rate_limit_error",
            )
            e.headers["Retry-After"] = "1"
            raise e from None
        except ShuttingDown:
            e = ApiError(503, "the server is shutting down", code="shutting_down", err_type="server_error")
            e.headers["Retry-After"] = "5"
            raise e from None
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        meta = {"id": rid, "created": int(time.time()), "model": self.model_id}
        if req.stream:
            return StreamingResponse(
                self.stream(request, jobs, events, meta, chat, req.include_usage, prompt_tokens),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await self.collect(request, jobs, events, meta, chat, prompt_tokens)

    async def collect(self, request, jobs, events, meta, chat, prompt_tokens):
        texts, reasons, n_out = [""] * len(jobs), [None] * len(jobs), 0
        left = len(jobs)
        try:
            while left:
                try:
                    index, ev = await asyncio.wait_for(events.get(), DISCONNECT_POLL_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        self.engine.cancel(jobs)
                        return JSONResponse({}, status_code=499)
                    continue
                if ev[0] == "text":
                    texts[index] += ev[1]
                elif ev[0] == "done":
                    reasons[index], n_out, left = ev[1], n_out + ev[2], left - 1
                else:
                    raise ApiError(503 if "shutting down" in ev[1] else 500, ev[1], code="generation_failed")
        finally:
            self.engine.cancel([j for j in jobs if not j.done])
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n_out, "total_tokens": prompt_tokens + n_out}
        if chat:
            choices = [
                {"index": i, "message": {"role": "assistant", "content": t}, "logprobs": None, "finish_reason": r}
                for i, (t, r) in enumerate(zip(texts, reasons))
            ]
            return {**meta, "object": "chat.completion", "choices": choices, "usage": usage}
        choices = [
            {"index": i, "text": t, "logprobs": None, "finish_reason": r}
            for i, (t, r) in enumerate(zip(texts, reasons))
        ]
        return {**meta, "object": "text_completion", "choices": choices, "usage": usage}

    async def watch_disconnect(self, request: Request, jobs: list[Job]) -> None:
        """Cancel the jobs the moment the client hangs up: a failed write would notice only later."""
        while (await request.receive())["type"] != "http.disconnect":
            pass
        self.engine.cancel([j for j in jobs if not j.done])

    async def stream(self, request, jobs, events, meta, chat, include_usage, prompt_tokens):
        obj = "chat.completion.chunk" if chat else "text_completion"
        watcher = asyncio.create_task(self.watch_disconnect(request, jobs))

        def chunk(index, text=None, finish=None, role=False):
            if chat:
                delta = {"role": "assistant", "content": ""} if role else ({} if text is None else {"content": text})
                choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            else:
                choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
            body = {**meta, "object": obj, "choices": [choice]}
            if include_usage:
                body["usage"] = None
            return sse(body)

        left, n_out = len(jobs), 0
        try:
            if chat:
                for i in range(len(jobs)):
                    yield chunk(i, role=True)
            failed = False
            while left and not failed:
                # what has arrived goes out as one write (one pass through Starlette and uvicorn) when
                # the loop fell behind the scheduler; at pace that is one event
                ready = [await events.get()]
                while not events.empty():
                    ready.append(events.get_nowait())
                out = []
                for index, ev in ready:
                    if ev[0] == "text":
                        out.append(chunk(index, ev[1]))
                    elif ev[0] == "done":
                        left, n_out = left - 1, n_out + ev[2]
                        out.append(chunk(index, finish=ev[1]))
                    else:
                        code = "shutting_down" if "shutting down" in ev[1] else "generation_failed"
                        out.append(sse(ApiError(503 if code == "shutting_down" else 500, ev[1], code=code).body()))
                        failed = True
                        break
                yield "".join(out)
            if include_usage and not left:
                usage = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": n_out,
                    "total_tokens": prompt_tokens + n_out,
                }
                yield sse({**meta, "object": obj, "choices": [], "usage": usage})
            yield "data: [DONE]\n\n"
        finally:  # the client went away (or we are done): whatever still runs gives its slot back
            watcher.cancel()
            self.engine.cancel([j for j in jobs if not j.done])


def sse(body: dict) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


class Mailbox:
    """Events from the scheduler thread to the event loop. A decode step emits one event per running
    sequence; waking the loop for each (call_soon_threadsafe: a self-pipe write and a loop turn apiece)
    cost the scheduler thread ~5% of its time at 16 streams. Here events are appended under a lock and a
    wake-up is sent only when none is pending, so a step's events usually arrive in one turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop, self.lock = loop, threading.Lock()
        self.items: list[tuple[asyncio.Queue, tuple]] = []
        self.pending = False  # a _deliver is scheduled and has not run yet

    def post(self, events: asyncio.Queue, item: tuple) -> None:
        with self.lock:
            self.items.append((events, item))
            if self.pending:
                return
            self.pending = True
        with contextlib.suppress(RuntimeError):  # the loop is closed (shutdown): nobody listens any more
            self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self.lock:
            items, self.items, self.pending = self.items, [], False
        for events, item in items:
            events.put_nowait(item)

    def emitter(self, events: asyncio.Queue, index: int):
        """The Job.emit the scheduler thread calls: hands (index, event) to the request's queue."""
        return lambda ev: self.post(events, (index, ev))


async def read_json(request: Request):
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None
