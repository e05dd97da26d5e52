"""The state store: schema versions, claims, and the whole protocol on every SQL engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, inspect, select, text

from migrate.errors import JobError
from migrate.jobs.models import JobRef, ResumeConfig
from migrate.jobs.run import resume_job, run_job
from migrate.jobs.status import job_status
from migrate.plan.model import ConversationPlan
from migrate.replay.replayer import SimulatedCrash
from migrate.state import schema as state
from migrate.state.records import JobRecord
from migrate.state.store import StateStore
from migrate.transform.findings import ErrorRecord
from migrate.transform.transformer import PlannedItem
from tests.replay.helpers import assert_exactly_once, run_config, write_source


def plan_of(source_id: str, items: int) -> ConversationPlan:
    planned = [
        PlannedItem(item={"type": "message", "role": "user", "content": f"m{i}"}, entry_index=i)
        for i in range(items)
    ]
    return ConversationPlan(
        source_kind="test",
        source_id=source_id,
        location=f"test:{source_id}",
        metadata={"source_id": source_id},
        items=planned,
        batch_sizes=[items] if items else [],
        fingerprint=f"fp-{source_id}",
        findings=[],
    )


def new_store(tmp_path: Path) -> StateStore:
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}", create=True)
    store.create_job(JobRecord(job_id="j", created_at=0.0, config={}, source="test", target={}))
    return store


def test_a_new_store_records_its_schema_version(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    assert store.schema_version() == state.SCHEMA_VERSION
    store.close()
    with pytest.raises(JobError, match="holds no job"):
        StateStore.from_url(f"sqlite:///{tmp_path / 'other.db'}")


def test_older_stores_are_upgraded_step_by_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_store(tmp_path).close()
    current = state.SCHEMA_VERSION
    steps: list[int] = []

    def add_note(conn: Connection) -> None:
        steps.append(current)
        conn.execute(text("ALTER TABLE conversations ADD COLUMN note TEXT"))

    def add_other(conn: Connection) -> None:
        steps.append(current + 1)

    monkeypatch.setattr(state, "SCHEMA_VERSION", current + 2)
    monkeypatch.setattr(state, "UPGRADES", {current: add_note, current + 1: add_other})
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    assert steps == [current, current + 1]
    assert store.schema_version() == current + 2
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT note FROM conversations")).all() == []
    store.close()


def test_a_version_1_store_gains_leases_workers_and_the_ledger(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.add_outcomes([(n, plan_of(f"c{n}", 2)) for n in range(3)])
    with store.engine.begin() as conn:
        # The layout of version 1: no leases, no workers, no pace.
        conn.execute(text("DROP INDEX ix_conversations_status_seq"))
        conn.execute(text("DROP INDEX ix_conversations_claimed_by_status"))
        conn.execute(text("ALTER TABLE conversations DROP COLUMN lease_until"))
        conn.execute(text("ALTER TABLE conversations DROP COLUMN base_items"))
        conn.execute(text("ALTER TABLE conversations DROP COLUMN orphans_with_items"))
        conn.execute(text("ALTER TABLE conversations DROP COLUMN unread_items"))
        conn.execute(text("ALTER TABLE job DROP COLUMN checked_below"))
        _drop_audit_columns(conn)
        conn.execute(text("DROP TABLE ledger"))
        conn.execute(text("DROP TABLE workers"))
        conn.execute(text("DROP TABLE pace"))
        conn.execute(text("UPDATE schema_version SET version = 1"))
    store.close()
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    assert store.schema_version() == state.SCHEMA_VERSION
    indexes = {index["name"] for index in inspect(store.engine).get_indexes("conversations")}
    assert {"ix_conversations_status_seq", "ix_conversations_claimed_by_status"} <= indexes
    assert [claim.seq for claim in store.claim_work("w", limit=2, lease=30.0)] == [0, 1]
    store.register_worker("w", host="h", pid=1, plans=False, lease=30.0)
    assert store.live_workers() == (1, False)
    store.close()


def as_version_4(store: StateStore) -> None:
    """Turn a new store back into the layout of version 4: every item id NOT NULL, no
    counters of orphans with items and of unread item ids, no bound of the source check."""
    dialect = store.engine.dialect.name
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE job DROP COLUMN checked_below"))
        _drop_audit_columns(conn)
        for column in ("orphans_with_items", "unread_items"):
            conn.execute(text(f"ALTER TABLE conversations DROP COLUMN {column}"))
        if dialect == "postgresql":
            conn.execute(text("ALTER TABLE items ALTER COLUMN item_id SET NOT NULL"))
        elif dialect in ("mysql", "mariadb"):
            conn.execute(text("ALTER TABLE items MODIFY item_id VARCHAR(128) NOT NULL"))
        else:
            conn.execute(text("DROP TABLE items"))
            conn.execute(
                text(
                    "CREATE TABLE items (seq INTEGER NOT NULL REFERENCES conversations (seq), "
                    "position INTEGER NOT NULL, source_conversation_id VARCHAR(512), "
                    "source_item_id VARCHAR(512), item_id VARCHAR(128) NOT NULL, "
                    "PRIMARY KEY (seq, position))"
                )
            )
        conn.execute(text("UPDATE schema_version SET version = 4"))


@pytest.mark.parametrize("engine", ["sqlite", "postgresql", "mariadb"])
def test_a_version_4_store_gains_unread_item_ids_and_orphans_with_items(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = {
        "sqlite": lambda: f"sqlite:///{tmp_path / 'state.db'}",
        "postgresql": lambda: str(request.getfixturevalue("postgres_url")),
        "mariadb": lambda: str(request.getfixturevalue("mariadb_url")),
    }[engine]()
    store = StateStore.from_url(url, create=True)
    store.create_job(JobRecord(job_id="j", created_at=0.0, config={}, source="test", target={}))
    store.add_outcomes([(n, plan_of(f"c{n}", 3)) for n in range(2)])
    as_version_4(store)
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO items (seq, position, source_conversation_id, source_item_id, "
                "item_id) VALUES (0, 0, 'c0', 's0', 'msg_kept')"
            )
        )
    store.close()
    store = StateStore.from_url(url)
    assert store.schema_version() == state.SCHEMA_VERSION == 11
    # The rows of version 4 are kept; the new counters start at 0, the check has no bound.
    assert store.job().checked_below is None
    assert store.item_ids(0) == {0: "msg_kept"}
    assert (store.conversation(0).orphans_with_items, store.conversation(0).unread_items) == (0, 0)
    intent = store.record_intent(1, "create", start=0, count=3)
    store.record_created_with_items(
        1,
        intent,
        "conv_1",
        unread=[(0, "a"), (1, "b")],
        source_conversation_id="c1",
        migrated=False,
    )
    assert store.item_rows(1) == {0: None, 1: None}
    assert store.totals().unread_item_ids == 2
    store.fill_item_ids(1, {0: "msg_a", 1: "msg_b"})
    assert store.item_ids(1) == {0: "msg_a", 1: "msg_b"}
    assert store.totals().unread_item_ids == 0
    store.record_orphans(1, [], 1, with_items=True)
    assert store.totals().orphans_with_items == 1
    store.close()


def _drop_source_marks(conn: Connection) -> None:
    """What version 11 added: where each record starts in the source."""
    conn.execute(text("ALTER TABLE conversations DROP COLUMN source_mark"))


def test_a_version_10_store_gains_source_marks_and_its_rows_have_none(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.add_outcomes([(n, plan_of(f"c{n}", 2)) for n in range(2)], {0: "jsonl:1:0:00", 1: "x"})
    assert store.read_start() == (0, "jsonl:1:0:00")
    with store.engine.begin() as conn:
        _drop_source_marks(conn)
        conn.execute(text("UPDATE schema_version SET version = 10"))
    store.close()
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    assert store.schema_version() == state.SCHEMA_VERSION == 11
    # No mark: a resume of this job reads its source from the beginning.
    assert store.read_start() == (0, None)
    store.close()


def _drop_report_facts(conn: Connection) -> None:
    """What version 9 added (and everything after): the findings and report progress tables,
    the plan's figures."""
    _drop_source_marks(conn)
    conn.execute(text("DROP TABLE findings"))
    conn.execute(text("DROP TABLE report_progress"))
    for column in ("tokens", "tokens_estimated", "first_response_id", "leaf_response_id"):
        conn.execute(text(f"ALTER TABLE conversations DROP COLUMN {column}"))


VERSION_7_FLOATS = {
    # table: (column, NOT NULL)
    "job": (("created_at", True), ("started_at", False), ("finished_at", False), ("elapsed", True)),
    "conversations": (("claimed_at", False), ("deleted_at", False), ("updated_at", True)),
    "intents": (("created_at", True), ("resolved_at", False)),
    "ledger": (("updated_at", True),),
}
"""The columns version 7 made FLOAT (single precision on MariaDB)."""


@pytest.mark.parametrize("engine", ["sqlite", "mariadb"])
def test_a_version_7_store_on_mariadb_gets_double_timestamps(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if engine == "sqlite"
        else str(request.getfixturevalue("mariadb_url"))
    )
    created = 1764604800.125  # a second needs 31 bits: FLOAT keeps 24
    store = StateStore.from_url(url, create=True)
    store.create_job(JobRecord(job_id="j", created_at=created, config={}, source="t", target={}))
    with store.engine.begin() as conn:
        if engine == "mariadb":
            for table, columns in VERSION_7_FLOATS.items():
                changes = ", ".join(
                    f"MODIFY {column} FLOAT{' NOT NULL' if required else ''}"
                    for column, required in columns
                )
                conn.execute(text(f"ALTER TABLE {table} {changes}"))
        _drop_report_facts(conn)
        conn.execute(text("UPDATE schema_version SET version = 7"))
    store.close()
    store = StateStore.from_url(url)
    assert store.schema_version() == state.SCHEMA_VERSION == 11
    if engine == "mariadb":
        with store.engine.connect() as conn:
            types: dict[str, str] = dict(
                conn.execute(
                    text(
                        "SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME), DATA_TYPE "
                        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                        "AND DATA_TYPE IN ('float', 'double')"
                    )
                ).all()
            )
            nullable: dict[str, str] = dict(
                conn.execute(
                    text(
                        "SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME), IS_NULLABLE "
                        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
                    )
                ).all()
            )
        assert set(types.values()) == {"double"}, types
        for table, columns in VERSION_7_FLOATS.items():
            for column, required in columns:
                assert nullable[f"{table}.{column}"] == ("NO" if required else "YES")
    # A timestamp written now keeps its fraction of a second.
    store.update_job(started_at=created + 0.5)
    assert store.job().started_at == created + 0.5
    store.close()


def _drop_audit_columns(conn: Connection) -> None:
    """What version 7 added (and everything after): the settle and audit columns."""
    _drop_report_facts(conn)
    conn.execute(text("ALTER TABLE conversations DROP COLUMN ambiguous_at"))
    conn.execute(text("ALTER TABLE conversations DROP COLUMN repairs"))
    conn.execute(text("ALTER TABLE intents DROP COLUMN item_id"))


def test_a_version_6_store_gains_the_settle_and_audit_columns(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.add_outcomes([(n, plan_of(f"c{n}", 2)) for n in range(2)])
    intent = store.record_intent(0, "create", start=0, count=0)
    store.record_created(0, intent, "conv_0")
    # Conversation 1 was left in progress with an append in doubt by the older version.
    store.record_created(1, store.record_intent(1, "create", start=0, count=0), "conv_1")
    store.record_attempt_failed(1, store.record_intent(1, "append", start=0, count=2), "ambiguous")
    with store.engine.begin() as conn:
        _drop_audit_columns(conn)
        conn.execute(text("UPDATE schema_version SET version = 6"))
        doubted_at = conn.execute(
            text("SELECT created_at FROM intents WHERE seq = 1 AND kind = 'append'")
        ).scalar_one()
    store.close()
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    assert store.schema_version() == state.SCHEMA_VERSION
    row = store.conversation(0)
    assert (row.conversation_id, row.ambiguous_at, row.repairs) == ("conv_0", None, 0)
    # The older version's append in doubt: that conversation waits and is audited like any.
    assert store.conversation(1).ambiguous_at == doubted_at

    def claimed(settled_before: float) -> list[int]:
        seqs = [
            c.seq for c in store.claim_work("w", limit=5, lease=None, settled_before=settled_before)
        ]
        store.release_claims()
        return seqs

    assert claimed(doubted_at - 1) == [0]
    # The new columns work: a write in doubt parks its conversation until it has settled, and
    # an audit's deletion names its item and counts as a repair.
    since = store.record_ambiguous_append(0, store.record_intent(0, "append", start=0, count=2))
    assert store.conversation(0).ambiguous_at == since
    assert claimed(doubted_at) == [1]
    assert claimed(since) == [0, 1]
    deletion = store.record_intent(0, "delete_item", start=1, count=1, item_id="msg_x")
    assert [i.item_id for i in store.open_intents(0)] == ["msg_x"]
    store.record_item_deleted(0, deletion)
    assert store.totals().repairs == 1
    store.close()


def test_a_store_newer_than_the_program_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_store(tmp_path).close()
    monkeypatch.setattr(state, "SCHEMA_VERSION", 0)
    with pytest.raises(JobError, match="newer than this program"):
        StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")


def test_claims_take_in_flight_work_first_and_never_twice(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    outcomes: list[tuple[int, ConversationPlan | ErrorRecord]] = [
        (n, plan_of(f"c{n}", 3)) for n in range(6)
    ]
    outcomes.append((6, plan_of("empty", 0)))
    outcomes.append((7, ErrorRecord(code="bad", message="unreadable", location="x:8")))
    store.add_outcomes(outcomes)
    store.record_intent(4, "create", start=0, count=0)  # conversation 4 is in flight
    first = [c.seq for c in store.claim_work("a", limit=3, lease=None)]
    second = [c.seq for c in store.claim_work("b", limit=10, lease=None)]
    assert first == [4, 0, 1]
    assert second == [2, 3, 5]
    assert [c.seq for c in store.claim_work("c", limit=10, lease=None)] == []
    store.release_claims("a")
    assert [c.seq for c in store.claim_work("c", limit=10, lease=None)] == [4, 0, 1]
    totals = store.totals()
    assert (totals.total, totals.pending, totals.in_progress) == (8, 5, 1)
    assert (totals.skipped, totals.failed, totals.items_planned) == (1, 1, 18)
    store.close()


@pytest.mark.postgres
def test_postgres_workers_skip_rows_another_worker_holds(postgres_url: str) -> None:
    store = StateStore.from_url(postgres_url, create=True)
    store.create_job(JobRecord(job_id="j", created_at=0.0, config={}, source="t", target={}))
    store.add_outcomes([(n, plan_of(f"c{n}", 2)) for n in range(5)])
    other = create_engine(postgres_url)
    c = state.conversations.c
    with other.begin() as conn:
        # Another worker is in the middle of claiming the first two rows.
        held = conn.execute(
            select(c.seq).order_by(c.seq).limit(2).with_for_update(skip_locked=True)
        ).scalars()
        assert list(held) == [0, 1]
        assert [c.seq for c in store.claim_work("mine", limit=10, lease=None)] == [2, 3, 4]
    other.dispose()
    assert [c.seq for c in store.claim_work("later", limit=10, lease=None)] == [0, 1]
    store.close()


@pytest.mark.parametrize(
    "engine",
    [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_a_crashed_job_resumes_with_its_state_on_any_engine(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'elsewhere.db'}"
        if engine == "sqlite"
        else request.getfixturevalue(f"{engine}_url")
    )
    source = write_source(tmp_path / "source.jsonl", conversations=4, messages=25)
    job_dir = tmp_path / "job"
    config = run_config(source, job_dir).model_copy(update={"state_url": url})
    crashes = iter([False, False, True])

    def hook(point: str, seq: int) -> None:
        if point == "after_append_call" and next(crashes, False):
            raise SimulatedCrash(point)

    with pytest.raises(SimulatedCrash):
        run_job(config, crash_hook=hook)
    assert not (job_dir / "state.db").exists()
    ref = JobRef(job_dir=job_dir, state_url=url)
    resume_job(ResumeConfig(job=ref))
    assert job_status(ref).conversations.migrated == 4
    if engine == "sqlite":
        # The job dir remembers a password-free URL: status needs no --state.
        assert job_status(JobRef(job_dir=job_dir)).conversations.migrated == 4
        assert_exactly_once(job_dir, migrated=4)


def test_the_job_dir_refuses_a_second_run(tmp_path: Path, source_file: Callable[..., Path]) -> None:
    source = source_file(conversations=1, messages=2)
    run_job(run_config(source, tmp_path / "job"))
    with pytest.raises(Exception, match="already holds a job"):
        run_job(run_config(source, tmp_path / "job"))


def test_plans_are_stored_compressed_and_plain_ones_still_read(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    plan = plan_of("c0", 40)
    store.add_outcomes([(0, plan), (1, plan_of("c1", 3))])
    with store.engine.begin() as conn:
        raw = conn.execute(text("SELECT plan FROM conversations WHERE seq = 0")).scalar_one()
        assert raw.startswith("z1:") and len(raw) < len(plan.model_dump_json()) / 2
        # a row written before plans were compressed
        conn.execute(
            text("UPDATE conversations SET plan = :plan WHERE seq = 1"),
            {"plan": plan_of("c1", 3).model_dump_json()},
        )
    claimed = {claim.seq: claim.plan for claim in store.claim_work("w", limit=5, lease=None)}
    assert claimed == {0: plan, 1: plan_of("c1", 3)}
    store.close()


def test_claims_stop_at_the_bound_of_the_source_check(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.add_outcomes([(n, plan_of(f"c{n}", 2)) for n in range(5)])
    store.update_job(checked_below=2)
    assert [c.seq for c in store.claim_work("a", limit=5, lease=None)] == [0, 1]
    assert store.claim_work("b", limit=5, lease=None) == []
    assert store.unfinished_count(below=2) == 2
    store.update_job(checked_below=None)
    assert [c.seq for c in store.claim_work("b", limit=5, lease=None)] == [2, 3, 4]
    store.close()


def test_a_version_9_store_keeps_its_items_in_key_order_on_sqlite(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    with store.engine.begin() as conn:
        conn.execute(
            state.conversations.insert().values(
                seq=0, source_id="c", location="l", status="migrated", updated_at=0.0
            )
        )
        # The layout of version 9: items in a table with a rowid and an index of its key.
        _drop_source_marks(conn)
        conn.execute(text("DROP TABLE items"))
        conn.execute(
            text(
                "CREATE TABLE items (seq INTEGER NOT NULL REFERENCES conversations (seq), "
                "position INTEGER NOT NULL, source_conversation_id VARCHAR(512), "
                "source_item_id VARCHAR(512), item_id VARCHAR(128), PRIMARY KEY (seq, position))"
            )
        )
        conn.execute(
            text("INSERT INTO items VALUES (0, 1, 'c', 'm1', 'msg_b'), (0, 0, 'c', 'm0', 'msg_a')")
        )
        conn.execute(text("UPDATE schema_version SET version = 9"))
    store.close()
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    assert store.schema_version() == state.SCHEMA_VERSION == 11
    with store.engine.connect() as conn:
        definition = conn.execute(
            text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'")
        ).scalar_one()
        tables = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'")).all()
    assert definition.endswith("WITHOUT ROWID")
    assert ("items_with_rowid",) not in tables
    assert store.item_ids(0) == {0: "msg_a", 1: "msg_b"}
    store.close()


@pytest.mark.parametrize(
    "engine",
    [
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("mariadb_dialect", marks=pytest.mark.mariadb),
    ],
)
def test_journal_ids_and_items_read_back_in_pages_on_any_engine(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    elif engine == "mariadb_dialect":
        # The `mariadb` dialect has RETURNING, the `mysql` one (same server) not: both ids.
        url = str(request.getfixturevalue("mariadb_url")).replace("mysql+", "mariadb+", 1)
    else:
        url = str(request.getfixturevalue(f"{engine}_url"))
    store = StateStore.from_url(url, create=True)
    store.create_job(JobRecord(job_id="j", created_at=0.0, config={}, source="test", target={}))
    store.add_outcomes([(seq, plan_of(f"s{seq}", 25)) for seq in range(4)])
    opened: list[int] = []
    for seq in range(4):
        create = store.record_intent(seq, "create", start=0, count=0)
        first = store.record_created(seq, create, f"conv{seq}", next_intent=("append", 0, 20))
        assert first is not None
        following = store.record_appended(
            seq,
            first,
            landed=[(p, f"s{seq}-{p}", f"item{seq}-{p}") for p in range(20)],
            source_conversation_id=f"s{seq}",
            migrated=False,
            next_intent=("append", 20, 5),
        )
        assert following is not None
        opened += [create, first, following]
        assert [(i.id, i.start, i.count) for i in store.open_intents(seq)] == [(following, 20, 5)]
        store.record_appended(
            seq,
            following,
            landed=[(p, f"s{seq}-{p}", f"item{seq}-{p}") for p in range(20, 25)],
            source_conversation_id=f"s{seq}",
            migrated=True,
        )
        assert store.open_intents(seq) == []
    assert len(set(opened)) == len(opened)
    with store.engine.connect() as conn:
        kept = conn.execute(select(state.intents.c.id, state.intents.c.outcome)).all()
    assert sorted(kept) == sorted((i, "applied") for i in opened)

    every = [(seq, p) for seq in range(4) for p in range(25)]
    for page in (7, 25, 1000):
        read = list(store.iter_items(page=page))
        assert [(row["seq"], row["position"]) for row in read] == every
        assert read[26] == {
            "seq": 1,
            "conversation_id": "conv1",
            "source_conversation_id": "s1",
            "source_item_id": "s1-1",
            "position": 1,
            "item_id": "item1-1",
        }
        middle = [
            (row["seq"], row["position"]) for row in store.iter_items(start=1, stop=3, page=page)
        ]
        assert middle == [key for key in every if 1 <= key[0] < 3]
    store.close()
