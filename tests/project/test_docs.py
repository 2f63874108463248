"""The documentation, held to the code: the README stays one screen with the commands CI runs, every link lands, and
each table that describes the code says what the code does. Where each table lives: tests/helpers/docs.py."""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path

import yaml

from provisioner import __version__, exits
from provisioner.actions.validating import ADVISED, DISTINCT_MIN
from provisioner.errors import TOKEN_MIN
from provisioner.settings import OPTIONS, Settings, shown_default
from tests.helpers.cli import cli_env, help_text, run_cli
from tests.helpers.constants import CHECKOUT, PREREQUISITES
from tests.helpers.definitions import shipped_reasons
from tests.helpers.docs import MARKER as SHELL_MARKER
from tests.helpers.docs import (
    README,
    SHELLS,
    WHERE,
    Block,
    anchors,
    blocks,
    commands,
    is_external,
    links,
    markdown_files,
    normalised_lines,
    slug,
)

DASH = "\N{EN DASH}"  # the docs write a range of numbers as typesetters do


SCREEN = 8192  # bytes: what a reader takes in before scrolling, as `wc -c` counts


CI = CHECKOUT / ".ci" / "run"


# .ci/run takes the install-and-run command as the line after the README's first ```bash line.
CI_EXTRACTION = "awk '/^```bash$/{getline; print; exit}' README.md"


INSTALL_AND_RUN = (
    "pip install '.[notebook]' && JUPYTER_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))') "
    "jupyter-init --module ''"
)


TEST_COMMAND = f"bash {PREREQUISITES} && pip install -e '.[test]' && python3 -m pytest"


# Programs that change the machine rather than a test's own files: the docs must say what the suite does with each.
MACHINE_CHANGING = ("useradd", "userdel", "groupadd", "groupdel", "usermod", "mount", "umount", "unshare", "setfacl")


# `provisioner` used as the command (the module form, `python -m provisioner`, is fine anywhere).
SECOND_NAME = re.compile(
    r"(?<!-m )(?<![\w/.-])provisioner (?:run|resume|state|stop|graph|check|help|--help|--version)\b"
    r"|bin/provisioner\b|`provisioner`|`provisioner "
)


def readme_shell_blocks() -> list[Block]:
    return [block for block in blocks(WHERE["ci_commands"].text()) if block.lang == "bash"]


def test_the_readme_fits_on_a_screen() -> None:
    size = len(WHERE["ci_commands"].path.read_bytes())
    assert size < SCREEN, f"README.md is {size} bytes; move the detail to docs/ (the README is the front page)"


def test_the_readmes_first_bash_block_is_the_install_and_run_command_ci_runs() -> None:
    assert CI_EXTRACTION in CI.read_text(), ".ci/run no longer reads the README this way: update this test"
    lines = WHERE["ci_commands"].text().splitlines()
    opening = lines.index("```bash")
    assert lines[opening + 1] == INSTALL_AND_RUN
    # awk takes one line: a second one would be shown to newcomers and never tried by CI.
    assert commands(readme_shell_blocks()[0]) == [INSTALL_AND_RUN]


def test_the_readme_shows_the_test_command_ci_greps_for_on_a_line_of_its_own() -> None:
    ci = CI.read_text()
    assert f'test_command="{TEST_COMMAND}"' in ci
    assert 'grep -qxF "$test_command" README.md' in ci
    assert TEST_COMMAND in WHERE["ci_commands"].text().splitlines()
    # One command, as a newcomer copies it, and the very line .ci/run runs.
    [block] = [block for block in readme_shell_blocks() if any("pytest" in line for line in block.lines)]
    assert commands(block) == [TEST_COMMAND]


def test_the_readme_says_the_tests_want_debian_as_root_and_links_what_they_do_to_the_machine() -> None:
    readme = " ".join(WHERE["test_machine"].text().split())
    assert "on Debian as root" in readme
    assert f"[`{PREREQUISITES}`]({PREREQUISITES})" in readme
    place = WHERE["machine_changes"]
    assert place.heading is not None
    target = f"{place.path.relative_to(CHECKOUT)}#{slug(place.heading)}"
    assert target in links(WHERE["test_machine"].text())


def test_every_relative_link_in_the_docs_reaches_a_file_and_its_anchor_a_heading() -> None:
    broken: list[str] = []
    checked = 0
    for page in markdown_files():
        for target in links(page.read_text()):
            if is_external(target):
                continue
            checked += 1
            path_part, _, anchor = target.partition("#")
            path = (page.parent / path_part).resolve() if path_part else page
            where = f"{page.relative_to(CHECKOUT)}: {target}"
            if not path.exists():
                broken.append(f"{where}: no such file")
            elif anchor and (path.suffix != ".md" or anchor not in anchors(path)):
                broken.append(f"{where}: no heading with that anchor")
    assert checked > 20, "links are found"
    assert broken == []


def test_every_page_of_the_docs_is_reachable_from_the_readme() -> None:
    reached, queue = {README}, deque([README])
    while queue:
        page = queue.popleft()
        for target in links(page.read_text()):
            path_part = target.partition("#")[0]
            if is_external(target) or not path_part.endswith(".md"):
                continue
            path = (page.parent / path_part).resolve()
            if path.exists() and path not in reached:
                reached.add(path)
                queue.append(path)
    assert [str(page.relative_to(CHECKOUT)) for page in markdown_files() if page not in reached] == []


def test_the_exit_code_table_is_the_one_the_code_generates() -> None:
    text = WHERE["exit_codes"].text()
    begin, end = "<!-- exit-codes:begin -->\n", "<!-- exit-codes:end -->"
    assert text.count(begin) == 1 and text.count(end) == 1
    table = text.split(begin, 1)[1].split(end, 1)[0]
    expected = exits.markdown(shipped_reasons())
    assert table == expected, f"the exit-code table has drifted; paste this between the markers:\n\n{expected}"


def test_the_docs_give_the_bands_of_codes_the_code_uses() -> None:
    text = " ".join(WHERE["exit_codes"].text().split())
    assert f"**{exits.REASONS.start}{DASH}{exits.REASONS.stop - 1}**" in text
    statuses = sorted(int(status.exit_code) for status in exits.Status if status.exit_code != exits.ExitCode.OK)
    assert f"**{statuses[0]}{DASH}{statuses[-1]}**" in text
    assert statuses == list(range(statuses[0], statuses[-1] + 1)), "the state codes are one band"


def test_the_documented_state_codes_are_the_ones_state_exits_with() -> None:
    rows = dict(re.findall(r"^\| (\d+) \| `(\w+)`", WHERE["state_codes"].text(), flags=re.MULTILINE))
    assert {status: int(code) for code, status in rows.items()} == {
        status.value: int(status.exit_code) for status in exits.Status
    }


def test_the_second_command_name_appears_only_where_it_is_explained() -> None:
    explained = WHERE["second_name"]
    said = " ".join(explained.text().split())
    assert (
        "`provisioner` is a second name for the same entry point, kept because deployed scripts may call it; "
        "everything else says `jupyter-init`." in said
    )
    found = []
    for page in markdown_files():
        text = page.read_text()
        if page == explained.path:
            text = text.replace(explained.text(), "")
        # Whitespace-normalised: a command wrapped across two lines is still the command.
        found += [f"{page.relative_to(CHECKOUT)}: {match}" for match in SECOND_NAME.findall(" ".join(text.split()))]
    assert found == []


def test_every_fenced_block_names_its_language() -> None:
    # A fence with none could hold commands and slip past the rule below: what is no command says `text`.
    bare = [
        f"{page.relative_to(CHECKOUT)}:{block.line}"
        for page in markdown_files()
        for block in blocks(page.read_text())
        if not block.lang
    ]
    assert bare == []


def test_every_shell_block_says_whether_it_is_an_example_or_what_runs_it() -> None:
    unmarked, unrun = [], []
    run_by = 0
    for page in markdown_files():
        for block in blocks(page.read_text()):
            if block.lang not in SHELLS:
                continue
            where = f"{page.relative_to(CHECKOUT)}:{block.line}"
            marker = SHELL_MARKER.match(block.before.strip())
            by_position = page == WHERE["ci_commands"].path and block == readme_shell_blocks()[0]
            if marker is None:
                unmarked.append(where)
                continue
            if marker[1]:
                continue
            run_by += 1
            runner = CHECKOUT / marker[2]
            assert marker[2] == ".ci/run" or marker[2].startswith("tests/"), f"{where}: run by .ci/run or a test"
            if not runner.is_file():
                unrun.append(f"{where}: {marker[2]} does not exist")
                continue
            if by_position and runner == CI:
                # .ci/run does not hold this command: it reads it here, by position (the test above holds that).
                assert CI_EXTRACTION in CI.read_text() and len(commands(block)) == 1, where
                continue
            lines = normalised_lines(runner)
            for command in commands(block):
                if not any(line == command or f'"{command}"' in line or f"'{command}'" in line for line in lines):
                    unrun.append(f"{where}: {marker[2]} does not run {command!r}")
    assert unmarked == [], "put <!-- example --> or <!-- run by: PATH --> on the line before each fence"
    assert unrun == []
    assert run_by >= 3, "the README's two commands and the lint block at least"


def synopsis_options() -> dict[str, set[str]]:
    """Each verb's long options, as the docs name them: the verb's synopsis line, and for `run`, whose synopsis says
    `[options]`, the first column of its option table."""
    [synopsis] = [block for block in blocks(WHERE["synopsis"].text()) if block.lang == "bash"]
    named: dict[str, set[str]] = {}
    for line in synopsis.lines:
        match = re.match(r"^jupyter-init (\w+)\b(.*)$", line)
        if match and not match[1].startswith("-") and match[1] not in ("TOKEN", "VERB"):
            named.setdefault(match[1], set()).update(re.findall(r"--[a-z][a-z-]*", match[2].split("#")[0]))
    assert any(re.match(r"^jupyter-init run \[options\]", line) for line in synopsis.lines)
    for first_cell in re.findall(r"^\| (.*?) \|", WHERE["options"].text(), re.MULTILINE):
        named["run"].update(re.findall(r"`(--[a-z][a-z-]*)", first_cell))
    return named


def help_options(verb: str) -> set[str]:
    """A verb's long options, as its --help lists them (the invocation column, not the descriptions)."""
    listed: set[str] = set()
    for line in help_text(verb).splitlines():
        if re.match(r"^  -", line):
            listed.update(re.findall(r"--[a-z][a-z-]*", re.split(r"\s{2,}", line.strip())[0]))
    listed.discard("--help")
    return listed


def test_the_docs_name_every_verb_and_each_verbs_help_and_the_docs_name_the_same_options() -> None:
    verbs = re.findall(r"^    (\w+)\s{2,}", help_text(), re.MULTILINE)
    named = synopsis_options()
    assert sorted(named) == sorted(verbs) == sorted(exits.VERBS)
    listed = {verb: help_options(verb) for verb in verbs}
    assert "--port" in named["run"] and "--grace" in named["stop"]  # the docs are parsed, not skimmed
    mismatches = {
        verb: {
            "in --help, not in the docs": sorted(listed[verb] - named[verb]),
            "in the docs, not in --help": sorted(named[verb] - listed[verb]),
        }
        for verb in listed
        if listed[verb] != named[verb]
    }
    assert mismatches == {}


def test_the_option_table_shows_the_defaults_the_run_uses() -> None:
    # A row's first cell names the option, then maybe its other spelling (`--progress-page`, `--no-progress-page`).
    rows = dict(re.findall(r"^\| `--([a-z-]+)[^`]*`(?:, `[^`]*`)* \| ([^|]*) \|", WHERE["options"].text(), re.M))
    shown = [name for name in OPTIONS if Settings.__dataclass_fields__[name].default is not None]
    assert shown
    for name in shown:
        cell = rows[name.replace("_", "-")].strip().strip("`")
        assert cell.split(" ")[0] == shown_default(name), (name, cell)


def test_the_readmes_verb_table_lists_every_verb() -> None:
    rows = re.findall(r"^\| `jupyter-init (\w+)` \|", WHERE["verbs"].text(), re.MULTILINE)
    assert rows == list(exits.VERBS)


def test_the_readme_shows_the_deployed_lines_the_examples_run() -> None:
    lines = [line for block in blocks(WHERE["deployed_lines"].text()) for line in block.lines]
    examples = CHECKOUT / "examples" / "cloud-init"
    placeholders = {
        "${RESEARCHER}": "USER",
        "${JUPYTER_TOKEN}": "TOKEN",
        "${START_URL}": "START_URL",
        "${COMPLETE_URL}": "COMPLETE_URL",
    }
    old_runcmd = yaml.safe_load((examples / "user-data-dropin.yaml").read_text())["runcmd"]
    [dropin] = [command for command in old_runcmd if isinstance(command, str) and "jupyter_init.sh" in command]
    for placeholder, shown in placeholders.items():
        dropin = dropin.replace(placeholder, shown)
    assert dropin in lines
    runcmd = yaml.safe_load((examples / "user-data.yaml").read_text())["runcmd"]
    [run] = [command for command in runcmd if isinstance(command, list) and str(command[0]).endswith("/jupyter-init")]
    [shown_run] = [line for line in lines if line.startswith("jupyter-init run ")]
    # The same options in the same order: the README's line is the example's, with the verb spelled out.
    assert re.findall(r"--[a-z-]+", shown_run) == [word for word in run if str(word).startswith("--")]


def test_every_pinned_install_in_the_docs_is_this_version() -> None:
    pins = [
        pin
        for page in markdown_files()
        for pin in re.findall(r"jupyter-init(?:\[notebook\])?==([0-9][^'`\s]*)", page.read_text())
    ]
    assert pins and set(pins) == {__version__}, pins


def test_the_token_rule_in_the_docs_is_the_codes() -> None:
    rule = " ".join(WHERE["token_rule"].text().split())
    readme = " ".join(WHERE["operator_security"].text().split())
    for text in (rule, readme):
        assert f"at least {TOKEN_MIN} characters" in text
        assert f"at least {DISTINCT_MIN} different characters" in text
    assert f"Under {ADVISED} characters it gets a warning" in rule


def test_the_diagram_is_the_graph_commands_output(home: Path) -> None:
    drawn = run_cli(["graph"], cli_env(home)).stdout
    assert drawn.startswith("---")
    diagrams = ["\n".join(block.lines) + "\n" for block in blocks(WHERE["diagram"].text()) if block.lang == "mermaid"]
    assert drawn in diagrams, "the diagram has drifted: paste the output of `jupyter-init graph`"


def test_the_docs_name_every_program_the_suite_changes_the_machine_with() -> None:
    sources = "\n".join(path.read_text() for path in (CHECKOUT / "tests").rglob("*.py"))
    used = [program for program in MACHINE_CHANGING if re.search(rf'\[\s*"{program}"', sources)]
    assert "useradd" in used  # the search finds commands as the tests write them
    section = WHERE["machine_changes"].text()
    assert [program for program in used if f"`{program}" not in section] == []


def test_the_layout_names_every_module_of_the_package_and_nothing_that_is_not_there() -> None:
    [layout] = [block for block in blocks(WHERE["layout"].text()) if block.lang == "text"]
    named: set[str] = set()
    parent = ""
    for line in layout.lines:
        entry = line.split()[0]
        if not line.startswith(" "):
            parent = entry if entry.endswith("/") else ""
            named.add(entry)
        else:
            named.add(parent + entry)
    missing = sorted(entry for entry in named if not (CHECKOUT / entry).exists())
    assert missing == [], "the layout names what is not in the checkout"
    package = CHECKOUT / "provisioner"
    modules = {f"provisioner/{path.name}" for path in package.glob("*.py") if path.name != "__init__.py"}
    packages = {f"provisioner/{path.parent.name}/" for path in package.glob("*/__init__.py")}
    assert sorted((modules | packages) - named) == [], "the layout leaves out a module"
