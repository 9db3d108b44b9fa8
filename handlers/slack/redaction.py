"""Everything the Slack face sends passes through bot.redact: Web API calls (replies,
thread posts, modals, App Home) and `respond()` to a command's response_url."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt.context.context import BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.web.slack_response import SlackResponse
from slack_sdk.webhook import WebhookResponse

from bot.redact import redact_value


class RedactingWebClient(WebClient):
    def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> SlackResponse:
        # Message bodies travel in json (chat.postMessage, views.open) or data; params and
        # headers carry ids and the token itself, which must reach Slack unchanged.
        return super().api_call(
            api_method, http_verb=http_verb, files=files, data=redact_value(data), params=params,
            json=redact_value(json), headers=headers, auth=auth,
        )


class RedactingRespond(Respond):
    def __call__(self, text: str | dict[str, Any] = "", blocks: Any = None, attachments: Any = None, **kwargs: Any) -> WebhookResponse:  # type: ignore[override]
        return super().__call__(redact_value(text), redact_value(blocks), redact_value(attachments), **kwargs)


def redacting_respond(context: BoltContext, next: Callable[[], None]) -> None:
    """Bolt middleware: the listeners' `respond` redacts (lazy listeners get a copy of it)."""
    if context.response_url:
        context["respond"] = RedactingRespond(response_url=context.response_url, proxy=context.client.proxy, ssl=context.client.ssl)
    next()
