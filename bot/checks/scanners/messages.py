"""The scanner's sentences about a file, in one place.

None of them quotes the file's bytes: a person may point the scanner at any file the bot can
read, and the report reaches a pull request and a chat thread.
"""

from __future__ import annotations

from collections.abc import Sequence


def unknown_type(guess: str) -> str:
    return f"unknown file type (looks like {guess}; not a model format the scanner reads)"


def polyglot(formats: Sequence[str]) -> str:
    return (
        f"the file is at once {', '.join(formats[:-1])} and {formats[-1]}: loaders disagree "
        "on what it is, and each reads different content"
    )


def sidecar_escapes(name: str, why: str) -> str:
    return f"old joblib array wrapper loads the side file {name!r}, which {why} (np.load with pickles allowed)"


def sidecar_missing(name: str) -> str:
    return f"the model names a side file {name!r} that is not beside it"
