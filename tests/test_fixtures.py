"""The committed real fixtures are the originals, and the suite reads nothing outside the repo."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.spec import REAL_FIXTURES, SPEC_PATH

ROOT = Path(__file__).resolve().parents[1]


def test_every_real_fixture_matches_its_manifest() -> None:
    manifest: dict[str, str] = json.loads((REAL_FIXTURES / "MANIFEST.json").read_text())
    present = {
        p.relative_to(REAL_FIXTURES).as_posix()
        for p in REAL_FIXTURES.rglob("*")
        if p.is_file() and p.name != "MANIFEST.json"
    }
    assert present == set(manifest)
    for relative, digest in manifest.items():
        assert hashlib.sha256((REAL_FIXTURES / relative).read_bytes()).hexdigest() == digest
    # every folder says where it came from, under which licence
    for folder in {Path(relative).parts[0] for relative in manifest}:
        assert "License" in (REAL_FIXTURES / folder / "SOURCE.md").read_text(), folder


def test_the_spec_subset_holds_the_paths_we_validate_and_its_licence() -> None:
    subset = json.loads(SPEC_PATH.read_text())
    assert "/conversations/{conversation_id}/items" in subset["paths"]
    assert "InputItem" in subset["components"]["schemas"]
    assert "MIT" in (SPEC_PATH.parent / "LICENSE").read_text()
    assert "commit" in (SPEC_PATH.parent / "SOURCE.md").read_text()


def test_no_test_names_a_path_outside_the_repository() -> None:
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("*.py")
        if path.name not in ("build.py", "test_fixtures.py")
        and '"shared"' in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
