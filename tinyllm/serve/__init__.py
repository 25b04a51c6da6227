"""`tinyllm serve`: an OpenAI-compatible HTTP server with continuous batching, and a web chat page.

- engine.py:   the scheduler thread that owns the model: slots, admission, one batched decode step.
- text.py:     ids -> text pieces per request: incremental UTF-8, stop strings, the Q&A answer trim.
- render.py:   chat messages -> prompt text (the Q&A template, or the documented plain rendering).
- protocol.py: request bodies checked field by field -> OpenAI-shaped errors naming the field.
- app.py:      the FastAPI app: /health, /v1/models, /v1/completions, /v1/chat/completions, / (the page).
- config.py:   ServeConfig, one field per `tinyllm serve` flag.
Nothing here imports torch at module import time except engine.py.
"""
