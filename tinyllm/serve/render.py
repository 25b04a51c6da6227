"""Chat messages -> the prompt text the model continues.

Q&A checkpoints (info["is_qa"]): TinyLLM's training template. Earlier user/assistant turns become
earlier pairs `<BOS> Question: {user}\nAnswer: {assistant} <EOS>` (data/qa.py PAIR_TEMPLATE), and the
last user message the open question `<BOS> Question: {user}\nAnswer:` (format_prompt). System messages
are dropped: the model was never trained on them.

Other checkpoints (plain text): every message's content, in order, each followed by a newline; the
model continues the text from there. Roles are not written: a plain-text model has never seen them.
"""

from __future__ import annotations

from ..data.qa import PAIR_TEMPLATE, format_prompt


def render_qa(messages: list[dict]) -> str:
    """The last message must be the user's (protocol.py checks it)."""
    turns = [m for m in messages if m["role"] in ("user", "assistant")]
    parts, question = [], None
    for m in turns[:-1]:
        if m["role"] == "user":
            if question is not None:  # two user turns in a row: the first had no answer
                parts.append(PAIR_TEMPLATE.format(question=question.strip(), answer=""))
            question = m["content"]
        else:
            parts.append(PAIR_TEMPLATE.format(question=(question or "").strip(), answer=m["content"].strip()))
            question = None
    if question is not None:
        parts.append(PAIR_TEMPLATE.format(question=question.strip(), answer=""))
    return "".join(parts) + format_prompt(turns[-1]["content"])


def render_plain(messages: list[dict]) -> str:
    return "".join(m["content"] + "\n" for m in messages)


def render_chat(messages: list[dict], is_qa: bool) -> str:
    return render_qa(messages) if is_qa else render_plain(messages)
