"""What the web process reads of a request: at most a limit, checked before any parsing.

A body over the limit gets 413 from its Content-Length alone, before a byte of it is read;
a chunked body is cut off (and refused) when it passes the limit while being read. The
limits are what the sender can legitimately send:

- GitHub caps webhook payloads at 25 MB and does not deliver larger ones.
- Slack sends a slash command (its text is a few thousand characters at most) or an
  interaction whose payload carries one view or message: a modal has at most 100 blocks, a
  message 50, each text at most 3,000 characters (a message's own text 40,000). That is
  well under 1 MB of JSON; form encoding (percent escapes) can double it. 2 MiB.
"""

from __future__ import annotations

import logging

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from bot import messages

GITHUB_MAX_BODY = 25 * 1000 * 1000
SLACK_MAX_BODY = 2 * 1024 * 1024

log = logging.getLogger("aimodel.server")


class TooLarge(Exception):
    def __init__(self, limit: int, length: int | None) -> None:
        super().__init__(messages.body_too_large(limit))
        self.limit = limit
        self.length = length


def read_body(request: Request, limit: int, *, cache: bool = True) -> bytes:
    """The raw body, or TooLarge when it is (or declares itself) longer than `limit`."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise TooLarge(limit, declared)
    # A body without a length (chunked) is read up to one byte past the limit: Werkzeug
    # stops at the limit without complaint, so that byte is what tells "too large" apart.
    request.max_content_length = limit + 1
    try:
        body = request.get_data(cache=cache)
    except RequestEntityTooLarge:
        raise TooLarge(limit, None) from None
    if len(body) > limit:
        raise TooLarge(limit, None)
    return body


def refused_line(route: str, status: int, reason: str) -> None:
    """The one log line a refused request leaves."""
    log.warning("%s refused with %s: %s", route, status, reason)
