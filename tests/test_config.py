"""Job configuration: SOURCE arguments, job files and flag overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters import JsonSourceConfig, SqlSourceConfig
from migrate.config import build_job_config, load_job_file
from migrate.errors import ConfigError


def test_a_path_is_a_file_source_and_a_url_a_sql_source() -> None:
    files = build_job_config(
        source="chats.jsonl", job_file=None, source_options={"format": "sharegpt"}
    )
    assert isinstance(files.source, JsonSourceConfig)
    assert files.source.format == "sharegpt"
    sql = build_job_config(
        source="sqlite:///chat.db", job_file=None, source_options={"preset": "langchain"}
    )
    assert isinstance(sql.source, SqlSourceConfig)
    assert sql.source.preset == "langchain"


def test_flags_that_do_not_fit_the_source_are_usage_errors() -> None:
    with pytest.raises(ConfigError, match="--preset applies to SQL"):
        build_job_config(
            source="chats.jsonl", job_file=None, source_options={"preset": "langchain"}
        )
    with pytest.raises(ConfigError, match="--format applies to files"):
        build_job_config(
            source="sqlite:///x.db", job_file=None, source_options={"format": "sharegpt"}
        )
    with pytest.raises(ConfigError, match="give a SOURCE"):
        build_job_config(source=None, job_file=None)


def test_job_file_paths_are_relative_to_the_file_and_flags_override_policy(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text(
        '[source]\nkind = "json"\npath = "data/chats.jsonl"\n\n[policy]\nreasoning = "text"\n'
    )
    config = build_job_config(
        source=None, job_file=job, policy_overrides={"assistant_content": "string"}
    )
    assert isinstance(config.source, JsonSourceConfig)
    assert config.source.path == (tmp_path / "data" / "chats.jsonl").resolve()
    assert config.policy.reasoning == "text"
    assert config.policy.assistant_content == "string"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[source]\nkind = "json"\npath = "x"\nbogus = 1\n', "bogus"),
        ('[source]\nkind = "json"\npath = "x"\n[policy]\nreasoning = "sometimes"\n', "reasoning"),
        ("[source\n", "cannot read job file"),
    ],
)
def test_bad_job_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    job = tmp_path / "job.toml"
    job.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_job_file(job)
