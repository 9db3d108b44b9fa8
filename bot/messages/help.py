"""Usage lines, the verb list and `VERB --help`, all rendered from the verb table (bot/verbs.py)
for one face: the terminal says `aimodel`, Slack says `/aimodel`."""

from __future__ import annotations

from bot.messages import command
from bot.sla import METRICS, OPERATORS, PER_CLASS_METRICS
from bot.verbs import COMMON, ENV_NOTE, SLA_NOTE, VERBS, Arg, Verb

PACKAGE = "aimodel-gitops"


def prog(face: str) -> str:
    return "aimodel" if face == "cli" else "/aimodel"


def _shown(arg: Arg) -> str:
    if arg.positional:
        name = arg.names[0]
        return {"": name, "?": f"[{name}]", "*": f"[{name}...]"}[arg.nargs]
    if arg.kind == "flag":
        return f"[{arg.names[0]}]"
    text = f"{arg.names[0]} {arg.metavar}"
    if arg.kind == "repeat":
        return f"[{text} ...]"
    return text if arg.required else f"[{text}]"


def usage_line(verb: Verb, face: str) -> str:
    words = [verb.name, *(_shown(a) for a in verb.args_for(face))]
    return f"usage: {prog(face)} {' '.join(words)}"


def overview(face: str) -> str:
    names = [v for v in VERBS if face in v.faces]
    width = max(len(v.name) for v in names)
    lines = [f"usage: {prog(face)} VERB [ARGS]", ""]
    lines += [f"  {v.name.ljust(width)}  {v.summary}" for v in names]
    lines += ["", f"{command(face, 'help VERB')} (or {command(face, 'VERB --help')}) explains one verb: its options, their values, an example."]
    common = [a for a in COMMON if a.shown_on(face)]
    if common:
        lines.append("Options on every verb: " + ", ".join(f"{a.names[0]}{' ' + a.metavar if a.metavar else ''}" for a in common) + ".")
    lines.append(f"{command(face, '--version')} says which version answers.")
    return "\n".join(lines)


def sla_grammar() -> list[str]:
    lines = [
        "SLA: terms `METRIC OP NUMBER` separated by commas, e.g. \"accuracy>=0.9,latency_p95_ms<=50\";",
        f"  OP is one of {', '.join(OPERATORS)}. Metrics:",
    ]
    width = max(len(m) for m in [*METRICS, *(f"{m}[CLASS]" for m in PER_CLASS_METRICS)])
    lines += [f"    {name.ljust(width)}  {meaning}" for name, meaning in METRICS.items()]
    lines += [f"    {(name + '[CLASS]').ljust(width)}  {meaning}" for name, meaning in PER_CLASS_METRICS.items()]
    lines.append("  CLASS as the data set's label column writes it, e.g. precision[fraud], recall[1].")
    return lines


def environments_note() -> str:
    return "ENV: an environment of .aimodel/config.yaml (`environments:`); a new repository has dev, test and prod."


def _arg_lines(arg: Arg) -> list[str]:
    names = ", ".join(arg.names)
    head = f"{names} {arg.metavar}".rstrip() if not arg.positional else arg.names[0]
    text = arg.help
    if arg.choices:
        text += f"; one of {', '.join(arg.choices)}"
    if arg.required:
        text += " (required)"
    elif arg.default not in ("", None, False, [], ()) and not arg.positional:
        text += f" (default {arg.default})"
    if arg.kind == "repeat":
        text += "; may be given more than once"
    return [f"  {head}", f"      {text}"]


def verb_help(verb: Verb, face: str) -> str:
    args = verb.args_for(face)
    lines = [usage_line(verb, face), "", verb.summary[:1].upper() + verb.summary[1:] + ".", ""]
    if args:
        lines.append("Arguments:")
        for arg in args:
            lines += _arg_lines(arg)
    common = [a for a in COMMON if a.shown_on(face)]
    if common:
        lines.append("Options on every verb:")
    for arg in common:
        lines += _arg_lines(arg)
    notes = {a.values_note for a in args}
    if ENV_NOTE in notes:
        lines += ["", environments_note()]
    if SLA_NOTE in notes:
        lines += ["", *sla_grammar()]
    if verb.permission:
        lines += ["", f"Who may run it: the roles under permissions.{verb.permission} in .aimodel/config.yaml."]
    lines += ["", "Example:", f"  {prog(face)} {verb.example}"]
    return "\n".join(lines)


def version() -> str:
    """The installed distribution's version; the package's own when it is not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        number = installed(PACKAGE)
    except PackageNotFoundError:
        from bot import __version__

        number = __version__
    return f"aimodel {number}"
