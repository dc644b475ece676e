"""The documents a reader follows: every relative link resolves (to a file and a heading), the
README names every `indici` command, its test command is the one CI runs, and every test file
the guarantees name exists."""

import argparse
import re
from pathlib import Path

import pytest

from indici_dagster.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "deploy" / "README.md",
    REPO / "deploy" / "iam" / "README.md",
    REPO / "benchmarks" / "README.md",
    REPO / "indici_dagster_tests" / "README.md",
]
_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def prose(markdown: str) -> str:
    """The text outside code blocks and code spans, where a link is a link."""
    return _CODE_SPAN.sub("", _FENCE.sub("", markdown))


def slug(heading: str, seen: dict[str, int]) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation dropped, spaces to `-`,
    `-1`, `-2` ... for repeats."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    base = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
    count = seen.get(base, 0)
    seen[base] = count + 1
    return base if count == 0 else f"{base}-{count}"


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a Markdown document."""
    seen: dict[str, int] = {}
    return {slug(m[1], seen) for m in _HEADING.finditer(_FENCE.sub("", markdown))}


def broken_links(document: Path, root: Path) -> list[str]:
    """Each relative link of `document` whose file, or whose `#anchor` in it, does not exist."""
    problems = []
    for target in _LINK.findall(prose(document.read_text(encoding="utf-8"))):
        if _EXTERNAL.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        path = (document.parent / path_part).resolve() if path_part else document
        if root not in path.parents and path != root:
            problems.append(f"{target}: outside the repository")
        elif not path.exists():
            problems.append(f"{target}: no such file")
        elif anchor and (path.suffix != ".md" or anchor not in anchors(path.read_text())):
            problems.append(f"{target}: no heading #{anchor} in {path.name}")
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_to_a_file_and_heading(document: Path) -> None:
    assert document.is_file()
    assert broken_links(document, REPO) == []


def test_the_link_check_catches_a_missing_file_a_missing_heading_and_an_escape(
    tmp_path: Path,
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Operating it\n\n## What `indici` does\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md) [ok](docs/a.md#operating-it) [ok](docs/a.md#what-indici-does)\n"
        "[web](https://example.invalid/x) `[code](nowhere.md)` [self](#top)\n"
        "[gone](docs/b.md) [bad](docs/a.md#operating) [out](../../etc/passwd)\n"
        "```\n[fenced](nowhere.md)\n```\n"
    )
    assert broken_links(page, tmp_path) == [
        "#top: no heading #top in README.md",
        "docs/b.md: no such file",
        "docs/a.md#operating: no heading #operating in a.md",
        "../../etc/passwd: outside the repository",
    ]


def test_repeated_headings_get_numbered_anchors_as_on_github() -> None:
    assert anchors("# Setup\n## Setup\n## The `indici` command\n## Q&A: why?\n") == {
        "setup",
        "setup-1",
        "the-indici-command",
        "qa-why",
    }


def commands(parser: argparse.ArgumentParser, prefix: str = "indici") -> list[str]:
    """Every leaf command of the parser, e.g. `indici db status`."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, f"{prefix} {name}")
    return found or [prefix]


def test_the_readme_lists_every_indici_command_once() -> None:
    section = (REPO / "README.md").read_text().split("## The `indici` command", 1)[1]
    table = section.split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(indici [a-z -]+?)(?: [\[<][^`]*)?` \|", table, re.M)
    assert sorted(listed) == sorted(commands(build_parser()))
    assert len(commands(build_parser())) >= 12


def test_the_readme_test_command_is_the_one_ci_runs_verbatim() -> None:
    ci = (REPO / ".ci" / "run").read_text().split("# the README's test command, verbatim\n", 1)
    command = ci[1].splitlines()[0]
    assert f"```bash\n{command}\n```" in (REPO / "README.md").read_text()


def test_every_test_file_the_guarantees_name_exists() -> None:
    rows = (REPO / "docs" / "guarantees.md").read_text().splitlines()
    promises = [row for row in rows if row.startswith("| **")]
    assert len(promises) >= 40
    test_files = {path.name for path in (REPO / "indici_dagster_tests").rglob("test_*.py")}
    for row in promises:
        proved_by = row.rstrip(" |").rsplit(" | ", 1)[1]
        named = re.findall(r"`(test_\w+\.py)`", proved_by)
        assert named, row[:60]
        for name in named:
            assert name in test_files, name
