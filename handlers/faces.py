"""The faces this package brings, registered with the core at start-up (bot.faces):
Slack (its notifier and /slack/events) and GitHub's webhook endpoint (/github/webhook)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.faces import Faces
    from bot.notify import Notifier


def slack_notifier(ctx: Any) -> Notifier | None:
    settings: Settings = ctx.settings
    if not settings.slack:
        return None
    from handlers.slack_notify import SlackNotifier

    return SlackNotifier(settings.slack, ctx)


def slack_routes(app: Any, ctx: Any, settings: Settings) -> None:
    if settings.slack:
        from handlers.slack import register

        register(app, ctx, settings.slack)


def github_routes(app: Any, ctx: Any, settings: Settings) -> None:
    if settings.github:
        from handlers.github import register

        register(app, ctx, settings.github)


def github_state(settings: Settings) -> None:
    """A damaged delivery database stops the start-up with one line, not every worker's boot."""
    if settings.github and not settings.redis_url:
        from handlers.github import SqliteDeliveries

        SqliteDeliveries(settings.home / "github" / "deliveries.db").close()


def install(faces: Faces) -> None:
    faces.notifier(slack_notifier)
    faces.route(slack_routes)
    faces.route(github_routes)
    faces.state_check(github_state)
