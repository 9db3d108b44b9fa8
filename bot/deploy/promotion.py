"""The promotion rule on a pull request, from plain data: every model version a change
brings into an environment must have run successfully in the environment before it (the
base branch's `promotion` order and `allow_skip`). The deploy verb refuses early; this keeps
a hand-made or hand-edited pull request to the same rule at merge time."""

from __future__ import annotations

from collections.abc import Callable

from bot.catalog import Catalog
from bot.messages import promotion as promo

RanOk = Callable[[str, str, str], bool]  # (env, model, version) -> it ran successfully there


def promotion_blockers(base: Catalog, head: Catalog, environments: list[str], ran_ok: RanOk) -> tuple[str, ...]:
    blockers = []
    for env in environments:
        before = base.config.comes_after(env)
        if before is None:
            continue
        was = base.running_in(env)
        for model, version in sorted(head.running_in(env).items()):
            if was.get(model) != version and not ran_ok(before, model, version):
                blockers.append(promo.not_promoted(model, version, before, env))
    return tuple(blockers)
