from .answer import answer, stream_answer, trim_stream
from .decode import generate, generate_ids, stream_text
from .sampling import filter_logits, sample_next

__all__ = [
    "generate",
    "generate_ids",
    "stream_text",
    "sample_next",
    "filter_logits",
    "answer",
    "stream_answer",
    "trim_stream",
]
