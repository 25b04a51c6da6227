"""A request's generated ids -> the text pieces it streams.

Three filters, each incremental so a stream never waits for the end:
1. UTF-8: a character split across tokens is held until its last byte (as generate.stream_text).
2. stop strings: text that could still become a stop string is held back; at a stop the text
   before it is released and the rest dropped (the stop string is never sent).
3. trim (Q&A answers): leading whitespace dropped, trailing whitespace held until something visible
   follows (as generate.answer.trim_stream), so the answer equals `tinyllm generate`'s.
"""

from __future__ import annotations

import codecs


def held_prefix(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of a stop string.

    >>> held_prefix("Amen. And", ["And the"])
    3
    """
    longest = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest


class TextStream:
    """Feed ids one at a time; each call returns the text that is now safe to send."""

    def __init__(self, tokenizer, stops: list[str] | None = None, trim: bool = False):
        self.tokenizer = tokenizer
        self.stops = [s for s in (stops or []) if s]
        self.trim = trim
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # decoded, held back for the stop strings
        self._started = False  # trim: something visible was sent
        self._ws = ""  # trim: whitespace held back
        self.stopped = False

    def feed(self, token_id: int) -> str:
        """-> text to send now; sets .stopped when a stop string appeared."""
        self._pending += self._utf8.decode(self.tokenizer.decode_bytes([token_id]))
        return self._release(final=False)

    def finish(self) -> str:
        """The end of generation (EOS or length): -> whatever was held back and is not a stop."""
        if not self.stopped:
            self._pending += self._utf8.decode(b"", final=True)
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        if self.stopped:
            return ""
        text, keep = self._pending, 0
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            text, self.stopped, final = text[:cut], True, True
        elif not final:
            keep = held_prefix(text, self.stops)
        out, self._pending = text[: len(text) - keep], text[len(text) - keep :]
        return self._trim(out, final) if self.trim else out

    def _trim(self, piece: str, final: bool) -> str:
        if not self._started:
            piece = piece.lstrip()
            if not piece:
                return ""
            self._started = True
        body = piece.rstrip()
        if not body:
            self._ws = "" if final else self._ws + piece
            return ""
        out, self._ws = self._ws + body, piece[len(body) :]
        if final:
            self._ws = ""
        return out
