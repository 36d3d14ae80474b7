"""The docs and the command lines agree: every option is documented, every documented option exists.

Two command lines are compared with README.md and docs/*.md: the ``drill`` command (every
subcommand) and the pytest plugin's options and ini keys (what ``harness.plugin`` registers). In
the other direction, every ``--option`` the docs name must be an option of ``drill``, of pytest
(with the plugins installed here) or of a script under ``bench/`` or ``scripts/``.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _pytest.config.argparsing import Parser

import harness.plugin
from harness.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
NOT_DOCUMENTED = {"--help"}  # argparse's own; every command has it


def _docs() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in DOC_FILES)


def _doc_options() -> dict[str, list[str]]:
    """Every --option the docs name -> the files that name it."""
    found: dict[str, list[str]] = {}
    for path in DOC_FILES:
        for opt in sorted(set(OPTION.findall(path.read_text(encoding="utf-8")))):
            found.setdefault(opt, []).append(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path))
    return found


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings if s.startswith("--")}


def drill_commands() -> dict[str, set[str]]:
    """``drill`` and each of its subcommands -> their long options."""
    out: dict[str, set[str]] = {}

    def walk(command: str, parser: argparse.ArgumentParser) -> None:  # nested: `drill report merge`
        out[command] = _long_options(parser)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(f"{command} {name}", sub)

    walk("drill", build_parser())
    return out


def plugin_options() -> tuple[set[str], set[str]]:
    """The long options and ini keys the agent-drills pytest plugin registers."""
    parser = Parser(_ispytest=True)
    for module in harness.plugin.pytest_plugins:
        importlib.import_module(module).pytest_addoption(parser)
    opts = {name for group in [parser._anonymous, *parser._groups] for o in group.options
            for name in o.names() if name.startswith("--")}
    return opts, set(parser._inidict)


def test_the_command_lines_are_read() -> None:
    commands = drill_commands()
    assert {"drill chain", "drill proxy", "drill report"} <= set(commands)
    assert "--block-time" in commands["drill chain"]
    opts, inis = plugin_options()
    assert {"--agent-cmd", "--chain", "--allow-remote", "--drill-gate"} <= opts
    assert "drill_agent_cmd" in inis


def _named_with(command: str) -> set[str]:
    """Options named in a paragraph, table or code block of the docs that also names ``command``."""
    blocks = re.split(r"\n[ \t]*\n", _docs())
    return {opt for block in blocks if command in block for opt in OPTION.findall(block)}


def test_every_drill_command_and_option_is_documented() -> None:
    docs = _docs()
    missing = []
    for command, opts in drill_commands().items():
        if command not in docs:
            missing.append(f"the command `{command}`")
        missing += [f"{command} {opt}" for opt in sorted(opts - NOT_DOCUMENTED - _named_with(command))]
    assert not missing, ("not named in README.md or docs/*.md (beside the command's name): "
                         + ", ".join(missing))


def test_every_plugin_option_and_ini_key_is_documented() -> None:
    docs = _docs()
    named = set(_doc_options())
    opts, inis = plugin_options()
    missing = sorted(opts - named) + sorted(f"ini key {k}" for k in inis if k not in docs)
    assert not missing, "pytest plugin options not named in README.md or docs/*.md: " + ", ".join(missing)


@pytest.fixture(scope="module")
def pytest_help(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``pytest --help`` with the plugins installed here, outside this project's configuration."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True,
                         cwd=tmp_path_factory.mktemp("help"), timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _script_options() -> set[str]:
    """Options the scripts under bench/ and scripts/ declare with argparse."""
    declared: set[str] = set()
    for path in [*(ROOT / "bench").glob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        declared |= set(re.findall(r"add_argument\(\s*(?:\"-\w\",\s*)?\"(--[a-z0-9-]+)\"", path.read_text(encoding="utf-8")))
    return declared


def test_every_option_the_docs_name_exists(pytest_help: str) -> None:
    known = set().union(*drill_commands().values(), plugin_options()[0], OPTION.findall(pytest_help), _script_options())
    unknown = {opt: files for opt, files in _doc_options().items() if opt not in known}
    assert not unknown, "the docs name options that no command has: " + "; ".join(
        f"{opt} (in {', '.join(files)})" for opt, files in sorted(unknown.items()))


def test_the_comparison_catches_an_undocumented_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above fails, naming the option, when a command grows an option the docs lack."""
    real = build_parser

    def with_extra() -> argparse.ArgumentParser:
        parser = real()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                action.choices["chain"].add_argument("--undocumented-knob")
        return parser

    monkeypatch.setattr(sys.modules[__name__], "build_parser", with_extra)
    with pytest.raises(AssertionError, match=r"drill chain --undocumented-knob"):
        test_every_drill_command_and_option_is_documented()


def test_the_comparison_catches_an_option_that_does_not_exist(pytest_help: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The reverse check fails, naming the option and the file, when the docs name an option no command has."""
    page = tmp_path / "page.md"
    page.write_text("Run `pytest -m drill --drill-budget-scal 2` on a slow machine.\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "DOC_FILES", [*DOC_FILES, page])
    with pytest.raises(AssertionError, match=r"--drill-budget-scal \(in .*page\.md\)"):
        test_every_option_the_docs_name_exists(pytest_help)
