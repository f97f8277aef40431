"""Renders docs/cli.md from the commands' own help, so the reference cannot drift from ``crmbridge --help``.

Run ``python -m crmbridge.docgen`` after changing a command; a test fails while the file is out of date.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

# Typer 0.29 vendors Click: its command objects are typer._click classes, not the `click` package's.
from typer._click import Command, Context
from typer.main import get_command

from crmbridge.cli import app

__all__ = ["CLI_DOC", "CommandHelp", "main", "render_cli_reference", "walk_commands"]

CLI_DOC = Path("docs") / "cli.md"
REGENERATE = "python -m crmbridge.docgen"


@dataclass(frozen=True)
class CommandHelp:
    """One command's help as ``--help`` shows it: usage, text, parameters (name, help) and subcommands."""

    path: str
    usage: str
    text: str
    arguments: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, str], ...]
    subcommands: tuple[tuple[str, str], ...]

    @property
    def summary(self) -> str:
        return _paragraphs(self.text)[0] if self.text else ""


def walk_commands(root: typer.Typer = app, name: str = "crmbridge") -> list[CommandHelp]:
    """Every command and group under ``root``, depth first, in the order they were declared."""
    command = get_command(root)
    found: list[CommandHelp] = []
    _walk(command, Context(command, info_name=name), found)
    return found


def _walk(command: Command, ctx: Context, found: list[CommandHelp]) -> None:
    children = _children(command, ctx)
    found.append(_describe(command, ctx, children))
    for child_name, child in children:
        _walk(child, Context(child, info_name=child_name, parent=ctx), found)


def _children(command: Command, ctx: Context) -> list[tuple[str, Command]]:
    list_commands = getattr(command, "list_commands", None)
    if list_commands is None:  # a leaf command
        return []
    children = []
    for child_name in list_commands(ctx):
        child = command.get_command(ctx, child_name)  # type: ignore[attr-defined]
        if child is not None and not child.hidden:
            children.append((child_name, child))
    return children


def _describe(command: Command, ctx: Context, children: list[tuple[str, Command]]) -> CommandHelp:
    arguments: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or "--help" in record[0]:  # every command has --help; listed once in the intro
            continue
        (arguments if param.param_type_name == "argument" else options).append(record)
    text = (command.help or "").partition("\f")[0].strip()
    subcommands = tuple((name, _first_paragraph(child.help or "")) for name, child in children)
    usage = f"{ctx.command_path} {' '.join(command.collect_usage_pieces(ctx))}".strip()
    return CommandHelp(ctx.command_path, usage, text, tuple(arguments), tuple(options), subcommands)


def _paragraphs(text: str) -> list[str]:
    """Help text as --help wraps it: blank lines separate paragraphs, single line breaks do not."""
    return [" ".join(line.strip() for line in block.splitlines()) for block in re.split(r"\n\s*\n", text.strip())]


def _first_paragraph(text: str) -> str:
    paragraphs = _paragraphs(text)
    return paragraphs[0] if paragraphs else ""


def _markdown(text: str) -> str:
    """Escape what Markdown would swallow (``<Key>`` reads as an HTML tag), except inside `code spans`."""
    parts = text.split("`")
    for index in range(0, len(parts), 2):  # even parts lie outside code spans
        parts[index] = parts[index].replace("<", "&lt;").replace(">", "&gt;").replace("*", r"\*")
    return "`".join(parts).replace("|", r"\|")


def _anchor(path: str) -> str:
    """GitHub's heading anchor for ``## `crmbridge dlq list` `` (lower case, spaces to dashes)."""
    return re.sub(r"[^\w\- ]", "", path.lower()).replace(" ", "-")


def _table(title: str, rows: tuple[tuple[str, str], ...]) -> list[str]:
    if not rows:
        return []
    lines = [f"| {title} | Description |", "|---|---|"]
    lines += [f"| `{name}` | {_markdown(_one_line(help_text))} |" for name, help_text in rows]
    return [*lines, ""]


def _one_line(text: str) -> str:
    return " ".join(_paragraphs(text))


def _section(command: CommandHelp, *, list_subcommands: bool = True) -> list[str]:
    lines = [f"## `{command.path}`", ""]
    lines += [f"{_markdown(paragraph)}\n" for paragraph in _paragraphs(command.text) if paragraph]
    lines += ["```text", command.usage, "```", ""]
    lines += _table("Argument", command.arguments)
    lines += _table("Option", command.options)
    if command.subcommands and list_subcommands:
        lines += ["| Command | What it does |", "|---|---|"]
        for name, summary in command.subcommands:
            target = f"{command.path} {name}"
            lines.append(f"| [`{name}`](#{_anchor(target)}) | {_markdown(summary)} |")
        lines.append("")
    return lines


def render_cli_reference(root: typer.Typer = app) -> str:
    """The whole of docs/cli.md."""
    commands = walk_commands(root)
    lines = [
        "# Command-line reference",
        "",
        f"Generated from the commands' `--help` by `{REGENERATE}`; a test fails when this file is out of date.",
        "Every command also takes `--help`. Commands that read `crmbridge.yaml` take `--config`/`-c` (default",
        "`crmbridge.yaml`, or the `CRMBRIDGE_CONFIG` environment variable).",
        "",
        "| Command | What it does |",
        "|---|---|",
    ]
    lines += [f"| [`{c.path}`](#{_anchor(c.path)}) | {_markdown(c.summary)} |" for c in commands[1:]]
    lines.append("")
    lines += _section(commands[0], list_subcommands=False)  # the index above lists them all
    for command in commands[1:]:
        lines += _section(command)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write docs/cli.md (or the path given) from the current commands."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else CLI_DOC
    target.write_text(render_cli_reference(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
