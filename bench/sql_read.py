"""Read (or plan) throughput and peak memory of the SQL source on PostgreSQL.

Fills a throwaway schema with `--rows` messages (interleaved across `--conversations`
conversations, generated server-side with `generate_series`), reads them back through
`SqlTableSource` by column mapping, and prints rows per second and peak RSS as JSON. With
`--plan` it runs the whole dry run (`migrate.planning.plan_job`: read, transform, validate,
batch, write the plan files) instead of reading alone.

    .venv/bin/python bench/sql_read.py --rows 1000000 [--plan]
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from adapters.config import SqlSourceConfig
from adapters.model import SourceConversation
from adapters.sql.tables import SqlTableSource
from migrate.config import JobConfig
from migrate.jobs.plan import plan_job

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--url", default=ADMIN_URL, help="PostgreSQL database to use")
    parser.add_argument("--plan", action="store_true", help="run the whole dry run, not a read")
    args = parser.parse_args()

    schema = f"bench_{secrets.token_hex(4)}"
    engine = create_engine(args.url)
    try:
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
            connection.execute(
                text(
                    f"CREATE TABLE {schema}.chat_messages (id bigint PRIMARY KEY, "
                    "conversation_id text NOT NULL, created_at timestamptz NOT NULL, "
                    "role text NOT NULL, content text)"
                )
            )
            connection.execute(
                text(
                    f"INSERT INTO {schema}.chat_messages "
                    "SELECT g, 'conv-' || lpad((g % :n)::text, 6, '0'), "
                    "timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second', "
                    "CASE WHEN (g / :n) % 2 = 0 THEN 'user' ELSE 'assistant' END, "
                    "'message ' || g || ': the quick brown fox jumps over the lazy dog 🦊' "
                    "FROM generate_series(1, :rows) AS g"
                ),
                {"n": args.conversations, "rows": args.rows},
            )
            connection.execute(
                text(f"CREATE INDEX ON {schema}.chat_messages (conversation_id, created_at, id)")
            )
            connection.execute(text(f"ANALYZE {schema}.chat_messages"))
        filled = time.perf_counter() - started

        config = SqlSourceConfig(
            url=args.url,
            schema=schema,
            table="chat_messages",
            conversation_column="conversation_id",
            order_columns=("created_at", "id"),
            role_column="role",
            content_column="content",
            timestamp_column="created_at",
            batch_size=args.batch_size,
        )
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        conversations = entries = failures = 0
        if args.plan:
            with tempfile.TemporaryDirectory() as job_dir:
                summary = plan_job(JobConfig(source=config), Path(job_dir))
            conversations = summary.conversations.planned
            entries = summary.items.planned
            failures = summary.conversations.failed
        else:
            for record in SqlTableSource(config).read():
                if isinstance(record, SourceConversation):
                    conversations += 1
                    entries += len(record.entries)
                else:
                    failures += 1
        elapsed = time.perf_counter() - started
        print(
            json.dumps(
                {
                    "rows": args.rows,
                    "conversations": conversations,
                    "entries": entries,
                    "failures": failures,
                    "mode": "plan" if args.plan else "read",
                    "batch_size": args.batch_size,
                    "fill_seconds": round(filled, 1),
                    "read_seconds": round(elapsed, 1),
                    "rows_per_second": round(args.rows / elapsed),
                    "peak_rss_mb_before_read": round(rss_before, 1),
                    "peak_rss_mb": round(peak_rss_mb(), 1),
                }
            )
        )
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()


if __name__ == "__main__":
    main()
