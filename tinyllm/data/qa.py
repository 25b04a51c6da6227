"""Question-answer JSON in TinyLLM's format.

A JSON array of objects with required string fields `question` and `answer` and
optional `id` and `category` (ignored for training). JSON Lines with the same
fields is accepted too. Each pair is trained as
    <BOS> Question: {question}\nAnswer: {answer} <EOS>
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import TinyLLMError

PROMPT_TEMPLATE = "<BOS> Question: {question}\nAnswer:"
PAIR_TEMPLATE = PROMPT_TEMPLATE + " {answer} <EOS>"


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str
    id: object = None
    category: str | None = None

    def text(self) -> str:
        return PAIR_TEMPLATE.format(question=self.question, answer=self.answer)

    def prompt(self) -> str:
        return PROMPT_TEMPLATE.format(question=self.question)


def format_prompt(question: str) -> str:
    """The prompt a Q&A model continues with an answer."""
    return PROMPT_TEMPLATE.format(question=question)


def is_qa_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".json", ".jsonl")


def _parse(path: Path, text: str) -> list:
    if path.suffix.lower() == ".jsonl":
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise TinyLLMError(f"{path}: line {lineno}: malformed JSON ({e.msg})") from None
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TinyLLMError(f"{path}: malformed JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
    if not isinstance(data, list):
        raise TinyLLMError(f"{path}: expected a JSON array of question/answer objects, got {type(data).__name__}")
    return data


def load_qa(path: str | Path) -> list[QAPair]:
    """Read and validate a Q&A file; every problem names the record index and field."""
    path = Path(path)
    if not path.exists():
        raise TinyLLMError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TinyLLMError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise TinyLLMError(f"{path}: cannot read ({e.strerror or e})") from None
    records = _parse(path, text)
    if not records:
        raise TinyLLMError(f"{path}: no question/answer records")
    pairs, seen_ids = [], {}
    for i, rec in enumerate(records):
        where = f"{path}: record {i}"
        if not isinstance(rec, dict):
            raise TinyLLMError(f"{where}: expected an object with 'question' and 'answer', got {type(rec).__name__}")
        for field in ("question", "answer"):
            if field not in rec:
                raise TinyLLMError(f"{where}: missing field '{field}'")
            if not isinstance(rec[field], str):
                raise TinyLLMError(f"{where}: field '{field}' must be a string, got {type(rec[field]).__name__}")
            if not rec[field].strip():
                raise TinyLLMError(f"{where}: field '{field}' is empty")
        if "category" in rec and rec["category"] is not None and not isinstance(rec["category"], str):
            raise TinyLLMError(f"{where}: field 'category' must be a string, got {type(rec['category']).__name__}")
        rid = rec.get("id")
        if rid is not None:
            if not isinstance(rid, (str, int)) or isinstance(rid, bool):
                raise TinyLLMError(f"{where}: field 'id' must be a string or integer, got {type(rid).__name__}")
            if rid in seen_ids:
                raise TinyLLMError(f"{where}: duplicate id {rid!r} (first used by record {seen_ids[rid]})")
            seen_ids[rid] = i
        pairs.append(QAPair(rec["question"].strip(), rec["answer"].strip(), rid, rec.get("category")))
    return pairs
