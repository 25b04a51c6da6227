"""Request bodies of /v1/completions and /v1/chat/completions, checked field by field.

Every problem raises ApiError with OpenAI's error shape and the field in `param`; unknown fields
(and `user`) are ignored, as OpenAI's own server does for fields it does not know. The sampling
ranges are generate.sampling.check_sampling's, the ones `tinyllm generate` enforces; top_k 0
means off, as in `tinyllm chat`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..generate.sampling import SAMPLING_LIMITS

MAX_N = 16
MAX_STOPS = 4
ROLES = ("system", "developer", "user", "assistant")


class ApiError(Exception):
    """-> HTTP `status` with body {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None, err_type=None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = err_type or ("invalid_request_error" if status < 500 else "server_error")
        self.headers: dict[str, str] = {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad(param: str, message: str, code: str = "invalid_value") -> ApiError:
    return ApiError(400, f"{param}: {message}", param=param, code=code)


@dataclass
class Sampling:
    """One request's generation settings (shared by its n choices)."""

    max_tokens: int | None = None
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False
    """<EOS> is never sampled, so every choice runs to max_tokens (vLLM's and llama-server's extension,
    for fixed-length benchmark traffic)."""


@dataclass
class ParsedRequest:
    model: str
    prompts: list[str] | None  # completions
    messages: list[dict] | None  # chat
    sampling: Sampling
    n: int = 1
    stream: bool = False
    include_usage: bool = False


def _number(body: dict, name: str, default, integer: bool = False):
    v = body.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
        raise bad(name, f"must be {'an integer' if integer else 'a number'}, got {type(v).__name__}", "invalid_type")
    return v


def _flag(body: dict, name: str) -> bool:
    v = body.get(name)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise bad(name, f"must be a boolean, got {type(v).__name__}", "invalid_type")
    return v


def _limit(name: str, value, key: str | None = None) -> None:
    ok, wanted = SAMPLING_LIMITS[key or name]
    if value is not None and not ok(value):
        raise bad(name, f"must be {wanted}, got {value}")


def _sampling(body: dict) -> Sampling:
    max_tokens = _number(body, "max_completion_tokens", None, integer=True)
    name = "max_completion_tokens"
    if max_tokens is None:
        max_tokens, name = _number(body, "max_tokens", None, integer=True), "max_tokens"
    _limit(name, max_tokens, "max_tokens")
    temperature = _number(body, "temperature", 1.0)
    _limit("temperature", temperature)
    top_p = _number(body, "top_p", None)
    _limit("top_p", top_p)
    top_k = _number(body, "top_k", None, integer=True)
    if top_k is not None and top_k < 0:
        raise bad("top_k", f"must be a positive integer (0 = off), got {top_k}")
    seed = _number(body, "seed", None, integer=True)
    _limit("seed", seed)
    stop = body.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    elif not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise bad("stop", "must be a string or a list of strings", "invalid_type")
    if len(stop) > MAX_STOPS:
        raise bad("stop", f"at most {MAX_STOPS} stop strings, got {len(stop)}")
    ignore_eos = _flag(body, "ignore_eos")
    return Sampling(max_tokens, float(temperature), top_k or None, top_p, seed, [s for s in stop if s], ignore_eos)


def _common(body, model_id: str) -> tuple[str, int, bool, bool]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    model = body.get("model")
    if model is None:
        raise bad("model", "is required", "missing_field")
    if not isinstance(model, str):
        raise bad("model", f"must be a string, got {type(model).__name__}", "invalid_type")
    if model != model_id:
        raise ApiError(
            404, f"The model '{model}' does not exist; this server has '{model_id}'", "model", "model_not_found"
        )
    n = _number(body, "n", 1, integer=True)
    if not 1 <= n <= MAX_N:
        raise bad("n", f"must be in 1..{MAX_N}, got {n}")
    stream = _flag(body, "stream")
    opts = body.get("stream_options")
    include_usage = False
    if opts is not None:
        if not isinstance(opts, dict):
            raise bad("stream_options", "must be an object", "invalid_type")
        include_usage = opts.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise bad("stream_options.include_usage", "must be a boolean", "invalid_type")
    return model, n, stream, include_usage


def parse_completion(body, model_id: str) -> ParsedRequest:
    model, n, stream, include_usage = _common(body, model_id)
    prompt = body.get("prompt")
    if prompt is None:
        raise bad("prompt", "is required", "missing_field")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not (isinstance(prompts, list) and prompts and all(isinstance(p, str) for p in prompts)):
        raise bad("prompt", "must be a string or a non-empty list of strings", "invalid_type")
    return ParsedRequest(model, prompts, None, _sampling(body), n, stream, include_usage)


def _content(m: dict, i: int) -> str:
    c = m.get("content")
    if isinstance(c, str):
        return c
    if isinstance(c, list):  # [{"type": "text", "text": ...}, ...]
        if all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in c):
            return "".join(p["text"] for p in c)
        raise bad(f"messages[{i}].content", "only text parts are supported", "invalid_type")
    raise bad(f"messages[{i}].content", "must be a string or a list of text parts", "invalid_type")


def parse_chat(body, model_id: str, is_qa: bool) -> ParsedRequest:
    model, n, stream, include_usage = _common(body, model_id)
    messages = body.get("messages")
    if messages is None:
        raise bad("messages", "is required", "missing_field")
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "must be a non-empty list of messages", "invalid_type")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise bad(f"messages[{i}]", "must be an object with role and content", "invalid_type")
        role = m.get("role")
        if role not in ROLES:
            raise bad(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}, got {role!r}")
        clean.append({"role": "system" if role == "developer" else role, "content": _content(m, i)})
    if is_qa and clean[-1]["role"] != "user":
        raise bad("messages", "the last message must be the user's question (a Q&A model answers questions)")
    return ParsedRequest(model, None, clean, _sampling(body), n, stream, include_usage)
