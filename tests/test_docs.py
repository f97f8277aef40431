"""The user docs stay true: README opens with the two commands, links resolve, docs/cli.md matches the commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crmbridge.docgen import REGENERATE, render_cli_reference, walk_commands

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKDOWN_FILES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _without_code(text: str) -> str:
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", FENCE.sub("", markdown), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def _relative_links(path: Path) -> list[str]:
    targets = LINK.findall(_without_code(path.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]  # not http:, https:, mailto:


def test_docs_cli_md_is_generated_from_the_current_commands() -> None:
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == render_cli_reference(), (
        f"docs/cli.md is out of date: run `.venv/bin/{REGENERATE}` and commit it"
    )


def test_every_command_and_every_parameter_has_help_text() -> None:
    commands = walk_commands()
    assert len(commands) > 10
    missing = [c.path for c in commands if not c.text.strip()]
    missing += [f"{c.path} {name}" for c in commands for name, text in (*c.arguments, *c.options) if not text.strip()]
    assert missing == [], "give these help text (docstring, or help= on the option/argument)"


def test_readme_opens_with_exactly_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first = FENCE.search(text)
    assert first is not None, "README.md has no code block"
    before = [line for line in text[: first.start()].splitlines() if line.strip()]
    assert len(before) == 1 and before[0].startswith("# "), f"only the title may precede the commands: {before}"
    commands = [line.split("#", 1)[0].strip() for line in first.group().splitlines()[1:-1]]
    assert [c for c in commands if c] == ["make demo", "make test"]


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_an_existing_file_and_heading(path: Path) -> None:
    broken = []
    for target in _relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == [], f"{path.relative_to(ROOT)}: {broken}"


def test_link_checker_sees_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("See [setup](missing.md), [web](https://example.com) and `[code](nope.md)`.\n")
    assert _relative_links(page) == ["missing.md"]
    assert _anchors("## `crmbridge dlq list`\n# Running as a service (systemd)\n") == {
        "crmbridge-dlq-list",
        "running-as-a-service-systemd",
    }


def _command_lines(path: Path) -> list[str]:
    """Shell lines in the file's code blocks that run crmbridge (comments dropped)."""
    lines = []
    for block in FENCE.findall(path.read_text(encoding="utf-8")):
        for line in block.splitlines():
            words = line.split("#", 1)[0].split()
            if words and re.fullmatch(r"(.*/bin/)?crmbridge", words[0]):  # also ExecStart=/opt/…/bin/crmbridge
                lines.append(" ".join(words))
    return lines


def _wrong_commands(lines: list[str]) -> list[str]:
    commands = {c.path: c for c in walk_commands()}
    wrong = []
    for line in lines:
        words = line.split()
        name = "crmbridge"
        for word in words[1:]:
            if f"{name} {word}" not in commands:
                break
            name = f"{name} {word}"
        options = (option.split(" <")[0] for option, _ in commands[name].options)
        known = {flag for option in options for flag in re.findall(r"--?[\w-]+", option)} | {"--help"}
        unknown = [w.split("=")[0] for w in words if w.startswith("-") and w.split("=")[0] not in known]
        if name == "crmbridge" and len(words) > 1 and not words[1].startswith("-"):
            wrong.append(f"{line}: no command {words[1]!r}")
        elif unknown:
            wrong.append(f"{line}: {name} has no option {unknown}")
    return wrong


@pytest.mark.parametrize(
    "path", [p for p in MARKDOWN_FILES if p.name != "cli.md"], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_commands_shown_in_the_docs_exist_with_their_options(path: Path) -> None:
    assert _wrong_commands(_command_lines(path)) == []


def test_command_checker_sees_unknown_commands_and_options() -> None:
    lines = ["crmbridge state purge --older-then 3", "crmbridge sink", "crmbridge dlq list --status all -m contacts"]
    assert _wrong_commands(lines) == [
        "crmbridge state purge --older-then 3: crmbridge state purge has no option ['--older-then']",
        "crmbridge sink: no command 'sink'",
    ]
