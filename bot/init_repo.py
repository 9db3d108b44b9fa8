"""`aimodel init`: the manifest repository (a bare origin plus the bot's working clone),
seeded from repo_templates/manifest-repo, a signing key, and the people given."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import git
import yaml

from bot import messages
from bot.codeowners import PATH as CODEOWNERS
from bot.codeowners import render as render_codeowners
from bot.config import Settings
from bot.gitrepo import BOT, Workspace, init_bare
from bot.manifests import CONFIG_PATH, parse_config

TEMPLATE = Path(__file__).resolve().parent.parent / "repo_templates" / "manifest-repo"
BOT_KEY_PATH = ".aimodel/keys/aimodel-bot.pub"


@dataclass
class InitResult:
    home: Path
    created: bool
    added_people: list[str] = field(default_factory=list)
    key_created: bool = False


def template_files() -> dict[str, bytes]:
    files = {}
    for path in sorted(TEMPLATE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[path.relative_to(TEMPLATE).as_posix()] = path.read_bytes()
    return files


def _config_with(text: bytes, people: Sequence[tuple[str, str]], key_path: str | None) -> tuple[bytes, list[str]]:
    parse_config(text)  # refuse to build on a broken config
    data = yaml.safe_load(text) or {}
    added = []
    current = data.get("people") or {}
    for name, role in people:
        entry = current.setdefault(name, {"roles": []})
        if role not in entry.setdefault("roles", []):
            entry["roles"].append(role)
            added.append(f"{name}={role}")
    data["people"] = current
    if key_path:
        keys = data.setdefault("signing", {}).setdefault("trusted_keys", []) or []
        if key_path not in keys:
            keys.append(key_path)
            data["signing"]["trusted_keys"] = keys
    out = yaml.safe_dump(data, sort_keys=False, default_flow_style=False).encode()
    parse_config(out)
    return out, added


def init_home(settings: Settings, people: Sequence[tuple[str, str]]) -> InitResult:
    from bot.checks.sign import generate_key

    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    result = InitResult(home, created=False)
    key = settings.signing_key_path
    if not key.exists():
        if settings.signing_key is not None:
            raise FileNotFoundError(messages.signing_key_missing(str(key)))
        key.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(key.parent, 0o700)
        generate_key(key)
        result.key_created = True
    public = Path(str(key) + ".pub")
    bare = home / "repo.git"
    work = home / "work"
    if not bare.exists():
        staging = home / ".init-staging"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            init_bare(bare.with_name(".repo.git.partial"), settings.default_branch)
            seed = git.Repo.init(staging, initial_branch=settings.default_branch)
            for path, content in template_files().items():
                target = staging / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            (staging / BOT_KEY_PATH).write_bytes(public.read_bytes())
            config, result.added_people = _config_with((staging / CONFIG_PATH).read_bytes(), people, BOT_KEY_PATH)
            (staging / CONFIG_PATH).write_bytes(config)
            (staging / CODEOWNERS).write_text(render_codeowners(parse_config(config)))
            seed.git.add("-A")
            seed.git.commit("-m", "Manifest repository from the aimodel template", env=BOT.env() | {"GIT_AUTHOR_NAME": BOT.name, "GIT_AUTHOR_EMAIL": BOT.email})
            seed.git.push(str(bare.with_name(".repo.git.partial")), f"HEAD:refs/heads/{settings.default_branch}")
            seed.close()
            os.rename(bare.with_name(".repo.git.partial"), bare)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(bare.with_name(".repo.git.partial"), ignore_errors=True)
        result.created = True
    if not work.exists():
        Workspace.clone(str(bare), work, settings.default_branch).close()
    if people and not result.created:
        # Bootstrapping people into an existing repository: a direct commit, as `init` is
        # run by whoever administers this home, like the first commit itself.
        ws = Workspace(work, settings.default_branch)
        ws.fetch()
        head = ws.head_of()
        text = ws.read_file(head, CONFIG_PATH) or b""
        config, result.added_people = _config_with(text, people, None)
        if result.added_people:
            changes: dict[str, bytes | None] = {
                CONFIG_PATH: config,
                CODEOWNERS: render_codeowners(parse_config(config)).encode(),
            }
            commit = ws.commit_change(head, changes, "Add people: " + ", ".join(result.added_people))
            ws.push(commit, settings.default_branch, expect=head)
            ws.fetch()
    return result
