"""User-facing errors.

Anything a user can cause (a missing file, a malformed record, a bad flag value)
raises `TinyLLMError` with a one-line message that names the thing and what is
wrong. The CLI prints it as `error: <message>` and exits with code 2, no traceback.
"""


class TinyLLMError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""
