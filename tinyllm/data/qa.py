"""Question-answer data in TinyLLM's format.

A JSON array of objects with required string fields `question` and `answer` and
optional `id` (string or integer, unique) and `category` (string); `id` and
`category` are ignored for training. JSON Lines (.jsonl, one object per line) with
the same fields is accepted too. Each pair is trained as

    <BOS> Question: {question}\nAnswer: {answer} <EOS>

and a question is asked by feeding the text up to "Answer:" (`format_prompt`).

`qa` names the demo set that ships in the package (tinyllm/assets/qa.json: questions
about tinyllm itself), as `bible` names the default text corpus. Its every tenth
record, the ones the train/val split holds out, rephrases an earlier question with
the same answer: every answer is trained, and the val loss measures rephrasings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import TinyLLMError

PROMPT_TEMPLATE = "<BOS> Question: {question}\nAnswer:"
PAIR_TEMPLATE = PROMPT_TEMPLATE + " {answer} <EOS>"
SPECIALS = ("<PAD>", "<UNK>", "<BOS>", "<EOS>")  # text that would be read as a special token
DEMO_QA = "qa"


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str
    id: object = None
    category: str | None = None
    index: int | None = None  # the record's position in its file, for messages

    def text(self) -> str:
        return PAIR_TEMPLATE.format(question=self.question, answer=self.answer)

    def prompt(self) -> str:
        return PROMPT_TEMPLATE.format(question=self.question)


def format_prompt(question: str) -> str:
    """The prompt a Q&A model continues with an answer."""
    return PROMPT_TEMPLATE.format(question=question.strip())


def demo_qa_path() -> Path:
    """The shipped demo set: questions and answers about tinyllm itself."""
    return Path(__file__).resolve().parent.parent / "assets" / "qa.json"


def resolve_qa_source(source):
    """'qa' -> the shipped demo set's path, unless a file or folder named 'qa' exists
    (the user's data is never shadowed); anything else unchanged."""
    if source is not None and str(source) == DEMO_QA and not Path(DEMO_QA).exists():
        return str(demo_qa_path())
    return source


def is_qa_file(path: str | Path) -> bool:
    p = Path(resolve_qa_source(str(path)))
    if p.suffix.lower() == ".jsonl":  # or a JSON Lines text corpus: Q&A when its first record has a 'question'
        from .formats import first_record_is_qa

        return first_record_is_qa(p)
    return p.suffix.lower() == ".json"


def _parse(path: Path, text: str) -> tuple[list, list[str]]:
    """-> (records, where) with where[i] naming record i for messages."""
    if path.suffix.lower() == ".jsonl":
        records, where = [], []
        # split on "\n" only: str.splitlines() also splits on U+2028/U+2029/U+0085/\x0b/\x0c/\x1c-\x1e,
        # which json.dumps(ensure_ascii=False) writes raw inside strings
        for lineno, line in enumerate(text.split("\n"), 1):
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise TinyLLMError(f"{path}: line {lineno}: malformed JSON ({e.msg})") from None
            except (RecursionError, ValueError) as e:  # nesting deeper than the parser's stack, huge integers
                raise TinyLLMError(f"{path}: line {lineno}: JSON the parser cannot hold ({_exhausted(e)})") from None
            where.append(f"record {len(records) - 1} (line {lineno})")
        return records, where
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TinyLLMError(f"{path}: malformed JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
    except (RecursionError, ValueError) as e:  # nesting deeper than the parser's stack, huge integers
        raise TinyLLMError(f"{path}: JSON the parser cannot hold ({_exhausted(e)})") from None
    if not isinstance(data, list):
        raise TinyLLMError(f"{path}: expected a JSON array of question/answer objects, got {_kind(data)}")
    return data, [f"record {i}" for i in range(len(data))]


def load_qa(path: str | Path) -> list[QAPair]:
    """Read and validate a Q&A file (or 'qa', the demo set); every problem is a
    TinyLLMError naming the file, the record index and the field."""
    path = Path(resolve_qa_source(str(path)))
    if not path.exists():
        raise TinyLLMError(f"{path}: no such file")
    if path.is_dir():
        raise TinyLLMError(f"{path}: is a directory, expected a Q&A .json or .jsonl file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM from Windows editors is fine
    except UnicodeDecodeError as e:
        raise TinyLLMError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise TinyLLMError(f"{path}: cannot read ({e.strerror or e})") from None
    records, names = _parse(path, text)
    if not records:
        raise TinyLLMError(f"{path}: no question/answer records")
    pairs, seen_ids = [], {}
    for i, (rec, name) in enumerate(zip(records, names)):
        where = f"{path}: {name}"
        if not isinstance(rec, dict):
            raise TinyLLMError(f"{where}: expected an object with 'question' and 'answer', got {_kind(rec)}")
        for field in ("question", "answer"):
            if field not in rec:
                raise TinyLLMError(f"{where}: missing field '{field}'")
            if not isinstance(rec[field], str):
                raise TinyLLMError(f"{where}: field '{field}' must be a string, got {_kind(rec[field])}")
            if not rec[field].strip():
                raise TinyLLMError(f"{where}: field '{field}' is empty")
            special = next((s for s in SPECIALS if s in rec[field]), None)
            if special:  # it would be encoded as the special token and break the template
                raise TinyLLMError(f"{where}: field '{field}' contains the special token {special}")
        if rec.get("category") is not None and not isinstance(rec["category"], str):
            raise TinyLLMError(f"{where}: field 'category' must be a string, got {_kind(rec['category'])}")
        rid = rec.get("id")
        if rid is not None:
            if not isinstance(rid, (str, int)) or isinstance(rid, bool):
                raise TinyLLMError(f"{where}: field 'id' must be a string or an integer, got {_kind(rid)}")
            if rid in seen_ids:
                raise TinyLLMError(f"{where}: field 'id': duplicate id {rid!r} (first used by {names[seen_ids[rid]]})")
            seen_ids[rid] = i
        pairs.append(QAPair(rec["question"].strip(), rec["answer"].strip(), rid, rec.get("category"), i))
    return pairs


def _kind(v) -> str:
    """A JSON type name for messages: 'a number', not Python's 'int'."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _exhausted(e: Exception) -> str:
    if isinstance(e, RecursionError):
        return "nested too deeply"
    return str(e).split(";")[0]  # e.g. 'Exceeds the limit (4300 digits) for integer string conversion'
