"""Source configurations: one frozen pydantic model per kind of source, in one union."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

JsonFormat = Literal["auto", "chat_completions", "finetune", "sharegpt", "chatgpt", "assistants"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JsonSourceConfig(_Config):
    """JSON or JSONL files (or a directory of them) holding conversations."""

    kind: Literal["json"] = "json"
    path: Path
    format: JsonFormat = "auto"
    id_field: str | None = None
    """Field holding the conversation id; auto-detected (`id`, `conversation_id`, ...) if unset."""
    messages_field: str | None = None
    """Field holding the message list; auto-detected (`messages`, `conversations`) if unset."""
    metadata_field: str | None = None
    """Field holding per-conversation metadata; `metadata` if present when unset."""
    chatgpt_branches: Literal["current", "all"] = "current"
    """ChatGPT exports: migrate the branch ending at `current_node`, or every branch."""


class SqlSourceConfig(_Config):
    """Rows in a SQL database, by preset or by an explicit column mapping."""

    kind: Literal["sql"] = "sql"
    url: str | None = None
    """SQLAlchemy URL without a password; the password comes from `password_env`."""
    url_env: str | None = None
    """Name of an environment variable holding the whole URL (may include a password)."""
    password_env: str | None = None
    preset: Literal["langchain", "agents-sdk", "llamaindex"] | None = None


class AssistantsLiveSourceConfig(_Config):
    """Threads read live from an Assistants-compatible server through the `openai` SDK."""

    kind: Literal["assistants_live"] = "assistants_live"
    base_url: str | None = None
    thread_ids: tuple[str, ...] = ()
    thread_ids_file: Path | None = None
    include_run_steps: bool = True


SourceConfig = Annotated[
    JsonSourceConfig | SqlSourceConfig | AssistantsLiveSourceConfig, Field(discriminator="kind")
]
