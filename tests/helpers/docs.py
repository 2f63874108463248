"""Where the documentation keeps what the tests hold to the code, and small readers of Markdown.

Every test that reads the documentation finds it through WHERE: a table that moves to another page or section changes
one line here, not the tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.constants import CHECKOUT

README = CHECKOUT / "README.md"
DOCS = CHECKOUT / "docs"
BENCHMARKS = CHECKOUT / "benchmarks" / "README.md"
CLI = DOCS / "reference" / "cli.md"


@dataclass(frozen=True)
class Place:
    """A section of a Markdown file, named by its heading as written (without the #s), or the whole file."""

    path: Path
    heading: str | None = None

    def text(self) -> str:
        text = self.path.read_text()
        return text if self.heading is None else section(text, self.heading, self.path)


WHERE: Mapping[str, Place] = {
    # .ci/run reads the install-and-run command as the line after the README's first ```bash, and greps for the test
    # command as a whole line: both stay in the README, whatever else moves.
    "ci_commands": Place(README),
    "test_machine": Place(README),  # says the suite wants Debian as root, and links machine_changes
    "deployed_lines": Place(README, "On a VM"),
    "verbs": Place(README, "Commands"),
    "operator_security": Place(README, "Security"),
    "synopsis": Place(CLI, "Synopsis"),
    "options": Place(CLI, "Options of `run`"),
    "state_codes": Place(CLI, "`jupyter-init state`"),
    "second_name": Place(CLI, "The second name"),
    "exit_codes": Place(DOCS / "reference" / "exit-codes.md"),
    "diagram": Place(DOCS / "reference" / "state-machine.md", "The diagram"),
    "receiver": Place(DOCS / "reference" / "callbacks.md", "Signed callbacks"),
    "token_rule": Place(DOCS / "security.md", "The token rule"),
    "machine_changes": Place(DOCS / "development.md", "What the suite does to the machine"),
    "layout": Place(DOCS / "development.md", "Layout"),
    "layers": Place(DOCS / "development.md", "Layers"),
}

SHELLS = ("bash", "sh", "console", "shell")
_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_files() -> list[Path]:
    """The README, every page under docs/, and the benchmarks' README: all the Markdown a reader is sent to."""
    return [README, *sorted(DOCS.rglob("*.md")), BENCHMARKS]


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language word, its lines, and the line just before its opening fence."""

    lang: str
    lines: tuple[str, ...]
    before: str
    line: int  # the opening fence's line number, from 1


def _lines_in_fences(text: str) -> Iterator[tuple[int, str, bool]]:
    """Each line with its number and whether it belongs to a fenced block (the fences included)."""
    fence = ""
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if not fence and match:
            fence = match[1]
            yield number, line, True
        elif fence and _closes(line, fence):
            fence = ""
            yield number, line, True
        else:
            yield number, line, bool(fence)


def _closes(line: str, fence: str) -> bool:
    """Whether `line` closes a block opened by `fence`: the same character, at least as many, nothing else."""
    bare = line.strip()
    return bare.startswith(fence) and not bare.strip(fence[0])


def blocks(text: str) -> list[Block]:
    found: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not _closes(lines[end], match[1]):
            end += 1
        before = lines[index - 1] if index > 0 else ""
        found.append(Block(match[2], tuple(lines[index + 1 : end]), before, index + 1))
        index = end + 1
    return found


def prose(text: str) -> str:
    """The text with every fenced block blanked out, line for line: what links and headings are read from."""
    return "\n".join("" if fenced else line for _, line, fenced in _lines_in_fences(text))


def headings(text: str) -> list[tuple[int, str]]:
    """(level, heading as written) of each heading outside code blocks."""
    return [(len(match[1]), match[2]) for line in prose(text).splitlines() if (match := _HEADING.match(line))]


def section(text: str, heading: str, where: Path | str = "the text") -> str:
    """The section under `heading`, down to the next heading of its level or above, code blocks included."""
    start = level = None
    kept: list[str] = []
    for _, line, fenced in _lines_in_fences(text):
        match = None if fenced else _HEADING.match(line)
        if start is None:
            if match and match[2] == heading:
                start, level = line, len(match[1])
            continue
        if match and level is not None and len(match[1]) <= level:
            break
        kept.append(line)
    if start is None:
        raise AssertionError(f"{where} has no heading {heading!r}: tests/helpers/docs.py's WHERE names it")
    return "\n".join(kept) + "\n"


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lowercased, without punctuation, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a Markdown file's headings; a repeated heading gets -1, -2... as GitHub numbers them."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, heading in headings(path.read_text()):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


_LINK = re.compile(r"\[(?:[^\]\\]|\\.)*\]\(([^()\s]+)\)")


def links(text: str) -> list[str]:
    """The target of every inline link outside code blocks."""
    return _LINK.findall(prose(text))


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE))


MARKER = re.compile(r"^<!-- (?:(example)|run by: (\S+)) -->$")


def commands(block: Block) -> list[str]:
    """A shell block's commands, whitespace-normalised: a console block's `$ ` lines, any other block's lines that are
    not comments or blank."""
    if block.lang == "console":
        lines = [line.strip()[2:] for line in block.lines if line.strip().startswith("$ ")]
    else:
        lines = [line for line in block.lines if line.strip() and not line.strip().startswith("#")]
    return [" ".join(line.split()) for line in lines]


def normalised_lines(path: Path) -> list[str]:
    return [" ".join(line.split()) for line in path.read_text().splitlines()]
