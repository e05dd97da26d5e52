"""The README is executable documentation: its commands exist and CI runs its test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrate.cli import main
from migrate.jobs.models import JobSummary

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_command_has_help_and_appears_in_readme() -> None:
    runner = CliRunner()
    for name, command in main.commands.items():
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert command.help, f"`migrate {name}` has no help text"
        assert re.search(rf"migrate {re.escape(name)}\b", README), f"README never shows {name}"


def test_ci_runs_the_readme_test_command_exactly() -> None:
    block = re.search(r"<!-- test-command -->\n```sh\n(.+?)\n```\n<!-- /test-command -->", README)
    assert block, "README lacks the test command between <!-- test-command --> markers"
    extracted = subprocess.run(
        [
            "bash",
            "-c",
            "sed -n '/<!-- test-command -->/,/<!-- \\/test-command -->/p' README.md"
            " | grep -v -e '^<!--' -e '^```'",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert extracted == block.group(1)
    assert 'eval "$test_command"' in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_python_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = README.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.+?)\n```", section, re.S)
    assert code, "README's Python API section has no example"
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    summary = namespace["summary"]
    assert isinstance(summary, JobSummary)
    assert summary.conversations.migrated > 0
    assert (tmp_path / "jobs" / "from-code" / "conversations.csv").is_file()
    id_map = namespace["id_map"]
    assert isinstance(id_map, dict)
    assert sum(1 for new_id in id_map.values() if new_id) == summary.conversations.migrated


def test_the_verb_list_shows_each_verbs_own_help_and_imports_no_verb() -> None:
    import click

    from migrate.cli import VERBS

    context = click.Context(main)
    for name, verb in VERBS.items():
        command = main.get_command(context, name)
        assert command is not None and command.name == name
        assert verb.short_help == command.get_short_help_str(limit=80), name
    # `migrate --help` reads the table: it imports neither the SDK nor any verb's module
    probe = (
        "import sys; from click.testing import CliRunner; from migrate.cli import main; "
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0; "
        "heavy = [m for m in ('openai', 'sqlalchemy', 'starlette', 'migrate.jobs') "
        "if m in sys.modules]; print(heavy)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert shown.stdout.strip() == "[]", shown.stdout + shown.stderr
