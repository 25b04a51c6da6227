"""User-facing errors.

Anything a user can cause (a missing file, a malformed record, a bad flag value)
raises `TinyLLMError` with a one-line message that names the thing and what is
wrong. The CLI prints it as `error: <message>` and exits with code 2, no traceback.
"""


class TinyLLMError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""


class TinyLLMWarning(UserWarning):
    """Something tinyllm handled but the user should know; the CLI prints it as `warning: <message>`."""


_warned: set[str] = set()


def warn_once(message: str, category: type[Warning] = TinyLLMWarning) -> None:
    """warnings.warn(message) the first time this message comes up in this process."""
    import warnings

    if message in _warned:
        return
    _warned.add(message)
    warnings.warn(message, category, stacklevel=3)
