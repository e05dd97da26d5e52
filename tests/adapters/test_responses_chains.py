"""`export_chains` against the local server's stored responses: leaves, pages, resumption."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from adapters.responses.chains import export_chains, history_file
from migrate.server.testing import AdminClient, ServerFactory
from tests.responses_chain import INSTRUCTIONS, chain_context, write_chain


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[ServerFactory]:
    (tmp_path / "servers").mkdir()
    with ServerFactory(tmp_path / "servers") as servers:
        yield servers


def client_for(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(api_key="test", base_url=base_url, max_retries=0)


def stored_chains(directory: Path) -> tuple[list[str], list[str]]:
    """150 turns (a 300-item history) and a 5-turn branch off turn 100."""
    main = write_chain(directory, turns=150)
    branch = write_chain(
        directory, turns=5, prefix="b", parent=(main[100], chain_context(directory, main[100]))
    )
    return main, branch


def test_every_leaf_becomes_one_whole_history(tmp_path: Path, factory: ServerFactory) -> None:
    stored = tmp_path / "stored"
    main, branch = stored_chains(stored)
    base_url = factory(responses_dir=stored)
    out = tmp_path / "out"
    listed = [*main, *branch, "resp_expired"]
    summary = export_chains(client_for(base_url), listed, out, server=base_url)

    assert (summary.ids, summary.retrieved, summary.failed) == (156, 155, 1)
    assert summary.failures[0].code == "response_not_found"
    assert summary.failures[0].conversation_id == "resp_expired"
    assert (summary.leaves, summary.written, summary.skipped) == (2, 2, 0)
    # 299 input items over three pages of 100, and 201 for the branch (three pages too).
    assert summary.input_item_pages == 6
    assert summary.shared == {main[-1]: [branch[-1]], branch[-1]: [main[-1]]}

    history = json.loads(history_file(out, main[-1]).read_text(encoding="utf-8"))
    assert len(history["items"]) == 300
    assert history["items"] == chain_context(stored, main[-1])
    assert (history["first_response_id"], history["leaf_response_id"]) == (main[0], main[-1])
    assert history["response_ids"] == main
    assert history["instructions"] == INSTRUCTIONS

    forked = json.loads(history_file(out, branch[-1]).read_text(encoding="utf-8"))
    # The shared prefix (turns 0..100 of the main chain) is in the branch's history too.
    assert forked["items"][:202] == history["items"][:202]
    assert forked["response_ids"] == [*main[:101], *branch]
    assert forked["first_response_id"] == main[0]


def test_a_second_run_skips_what_is_written_and_asks_for_nothing(
    tmp_path: Path, factory: ServerFactory
) -> None:
    stored = tmp_path / "stored"
    main = write_chain(stored, turns=30)
    base_url = factory(responses_dir=stored)
    out = tmp_path / "out"
    export_chains(client_for(base_url), main, out)
    before = history_file(out, main[-1]).read_bytes()
    with AdminClient(base_url) as admin:
        calls = sum(sum(c.values()) for c in admin.stats()["requests"].values())
        again = export_chains(client_for(base_url), main, out)
        calls_after = sum(sum(c.values()) for c in admin.stats()["requests"].values())
    assert (again.written, again.skipped, again.retrieved) == (0, 1, 30)
    # 30 retrieves and one page of input items the first time; nothing the second time.
    assert calls == 31
    assert calls_after == calls
    assert history_file(out, main[-1]).read_bytes() == before


def test_an_interrupted_export_resumes_where_it_stopped(
    tmp_path: Path, factory: ServerFactory
) -> None:
    stored = tmp_path / "stored"
    main = write_chain(stored, turns=40)
    base_url = factory(responses_dir=stored)
    out = tmp_path / "out"
    client = client_for(base_url)
    seen = 0

    def interrupt(event: object) -> None:
        nonlocal seen
        seen += 1
        if seen == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_chains(client, main, out, interrupt)
    assert not history_file(out, main[-1]).exists()
    assert len(list((out / ".responses").glob("*.json"))) == 25
    assert not list(out.rglob("*.tmp"))
    summary = export_chains(client, main, out)
    assert (summary.retrieved, summary.written) == (40, 1)
    history = json.loads(history_file(out, main[-1]).read_text(encoding="utf-8"))
    assert history["items"] == chain_context(stored, main[-1])


def test_an_expired_leaf_leaves_its_parent_as_the_leaf(
    tmp_path: Path, factory: ServerFactory
) -> None:
    stored = tmp_path / "stored"
    main = write_chain(stored, turns=4)
    (stored / f"{main[-1]}.json").unlink()
    base_url = factory(responses_dir=stored)
    summary = export_chains(client_for(base_url), main, tmp_path / "out")
    assert (summary.failed, summary.leaves, summary.written) == (1, 1, 1)
    assert history_file(tmp_path / "out", main[-2]).exists()
