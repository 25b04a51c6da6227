"""The chat template of a Q&A checkpoint: TinyLLM's training format as a Jinja template.

A Q&A model was trained on `<BOS> Question: {q}\\nAnswer: {a} <EOS>` (tinyllm/data/qa.py); a
conversation renders its earlier turns as earlier pairs and ends with the prompt of the last
question, `<BOS> Question: {q}\\nAnswer:`, which is what `tinyllm chat` feeds. Questions and
answers are stripped, as the training data was.
"""

from __future__ import annotations

from ..data.qa import PAIR_TEMPLATE, PROMPT_TEMPLATE

# the two halves of PAIR_TEMPLATE around {question} / {answer}
_Q_OPEN, _Q_CLOSE = PROMPT_TEMPLATE.split("{question}")
_A_OPEN, _A_CLOSE = PAIR_TEMPLATE[len(PROMPT_TEMPLATE) :].split("{answer}")

QA_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    f"{{{{- {_Q_OPEN!r} + (message['content'] | trim) + {_Q_CLOSE!r} -}}}}"
    "{%- elif message['role'] == 'assistant' -%}"
    f"{{{{- {_A_OPEN!r} + (message['content'] | trim) + {_A_CLOSE!r} -}}}}"
    "{%- else -%}"
    "{{- raise_exception('a TinyLLM Q&A model takes only user and assistant messages, got ' + message['role']) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
)
