"""The one error signing and verification raise at their callers."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["SignatureError"]


class SignatureError(Exception):
    """The signature is missing, untrusted, malformed, or the artifact does not match it.

    ``str(err)`` says why in plain words; ``err.reasons`` lists every problem found.
    """

    def __init__(self, message: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reasons: list[str] = list(reasons) or [message]
