"""The reference pages in `docs/` are generated from the code, and the code registry is complete."""

from __future__ import annotations

import ast
from pathlib import Path

from migrate.reporting.codes import API_ERROR_PREFIX, CODES
from migrate.reporting.docs import attribute_docs, reference_pages
from migrate.transform.policy import Policy

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_reference_pages_are_what_the_code_generates() -> None:
    for name, text in reference_pages().items():
        committed = (ROOT / "docs" / name).read_text(encoding="utf-8")
        assert committed == text, (
            f"docs/{name} is out of date: run `python -m migrate.reporting.docs docs`"
        )


def test_every_policy_key_and_job_file_key_is_documented() -> None:
    pages = reference_pages()
    docs = attribute_docs(Policy)
    for key, field in Policy.model_fields.items():
        assert docs.get(key), f"policy.{key} has no docstring"
        assert f"| `{key}` |" in pages["policy.md"]
        assert field.annotation is not None
    assert "|  |" not in pages["job-file.md"], "a job-file key has no docstring"


def _code_literals() -> dict[str, str]:
    """Every string literal passed as a `code` (by keyword, or by position to a callable whose
    parameter is named `code`) in the engine and the readers."""
    trees = {
        path: ast.parse(path.read_text(encoding="utf-8"))
        for package in ("migrate", "adapters")
        for path in (ROOT / package).rglob("*.py")
        if "server" not in path.relative_to(ROOT).parts  # the local server's API error codes
    }
    position: dict[str, int] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            function: ast.FunctionDef | None = None
            if isinstance(node, ast.FunctionDef) and node.name != "__init__":
                function, name = node, node.name
            elif isinstance(node, ast.ClassDef):
                init = [b for b in node.body if isinstance(b, ast.FunctionDef)]
                function = next((b for b in init if b.name == "__init__"), None)
                name = node.name
                fields = [
                    b.target.id
                    for b in node.body
                    if isinstance(b, ast.AnnAssign) and isinstance(b.target, ast.Name)
                ]
                if function is None and "code" in fields:
                    # a dataclass (or model) built with positional fields: `RawFailure(...)`
                    position[name] = fields.index("code")
            if function is None:
                continue
            params = [a.arg for a in function.args.posonlyargs + function.args.args]
            params = params[1:] if params and params[0] in ("self", "cls") else params
            if "code" in params:
                position[name] = params.index("code")
    found: dict[str, str] = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            values = [k.value for k in node.keywords if k.arg == "code"]
            if name in position and len(node.args) > position[name]:
                values.append(node.args[position[name]])
            for value in values:
                options = [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
                for option in options:
                    if isinstance(option, ast.Constant) and isinstance(option.value, str):
                        found[option.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return found


def test_every_code_in_the_source_is_registered_with_meaning_and_remedy() -> None:
    literals = _code_literals()
    assert len(literals) > 50  # the scan finds the codes (a broken scan would find none)
    assert {"reasoning_dropped", "malformed_json", "retries_exhausted"} <= set(literals)
    missing = {code: where for code, where in literals.items() if code not in CODES}
    assert missing == {}, f"codes without an entry in migrate/reporting/codes.py: {missing}"
    unused = set(CODES) - set(literals)
    assert unused == set(), f"registered codes nothing produces: {unused}"
    for entry in CODES.values():
        assert entry.meaning.endswith(".") and entry.remedy.endswith("."), entry.code
        assert not entry.code.startswith(API_ERROR_PREFIX)
