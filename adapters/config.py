"""Source configurations: one frozen pydantic model per kind of source, in one union."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

JsonFormat = Literal[
    "auto", "chat_completions", "finetune", "sharegpt", "chatgpt", "assistants", "responses"
]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JsonSourceConfig(_Config):
    """JSON or JSONL files (or a directory of them) holding conversations."""

    kind: Literal["json"] = "json"
    path: Path
    """A file or a directory (read recursively, in name order)."""
    format: JsonFormat = "auto"
    """The layout of the records; detected from the content when `auto`."""
    id_field: str | None = None
    """Field holding the conversation id; auto-detected (`id`, `conversation_id`, ...) if unset."""
    messages_field: str | None = None
    """Field holding the message list; auto-detected (`messages`, `conversations`) if unset."""
    metadata_field: str | None = None
    """Field holding per-conversation metadata; `metadata` if present when unset."""
    chatgpt_branches: Literal["current", "all"] = "current"
    """ChatGPT exports: migrate the branch ending at `current_node`, or every branch."""
    lone_surrogates: Literal["fail", "replace"] = "fail"
    """A lone UTF-16 surrogate escape (`"\\udc00"`): fail that conversation, or migrate it
    with U+FFFD in its place (a `lone_surrogate_replaced` finding)."""
    thread_order: Literal["auto", "asc", "desc"] = "auto"
    """Assistants exports: the order saved message lists are in where timestamps cannot tell;
    `auto` assumes oldest first for `export-threads` output, newest first for saved API lists."""
    responses_instructions: Literal["developer", "drop"] = "developer"
    """Responses histories: `instructions` as a leading developer message, or dropped."""


SqlPreset = Literal["langchain", "agents-sdk", "llamaindex"]


class SqlSourceConfig(_Config):
    """Rows in a SQL database, by preset or by an explicit column mapping.

    A preset needs only `url` (its default table names can be overridden with `table` and,
    for `agents-sdk`, `sessions_table`). Without a preset, name the `table` (or give a read-only
    `query`), the `conversation_column`, and one way to read messages: `role_column` plus
    `content_column` (one row per message), `message_json_column` (one Chat Completions
    message per row) or `messages_json_column` (a whole messages array per row).
    """

    kind: Literal["sql"] = "sql"
    url: str | None = None
    """SQLAlchemy URL without a password; the password comes from `password_env`."""
    url_env: str | None = None
    """Name of an environment variable holding the whole URL (may include a password)."""
    password_env: str | None = None
    """Name of an environment variable holding the database password."""
    preset: SqlPreset | None = None
    """A known schema (LangChain, OpenAI Agents SDK, LlamaIndex chat stores)."""

    table: str | None = None
    """Table holding the messages (a preset's default table name when a preset is set)."""
    schema_name: str | None = Field(
        default=None, validation_alias=AliasChoices("schema", "schema_name")
    )
    """Schema (PostgreSQL) or database (MySQL) of the tables; `schema` in a job file."""
    sessions_table: str | None = None
    """`agents-sdk` only: the sessions table (default `agent_sessions`)."""
    query: str | None = None
    """A single read-only SELECT (or WITH ... SELECT) used instead of `table`."""

    conversation_column: str | None = None
    """Column whose value identifies the conversation (a preset's default when unset)."""
    order_columns: tuple[str, ...] = ()
    """Order of messages within a conversation, e.g. `["created_at", "id"]`; default: the key."""
    role_column: str | None = None
    """Column holding each message's role (one row per message)."""
    content_column: str | None = None
    """Column holding each message's content (one row per message)."""
    content_json: bool = False
    """The content column holds JSON (a string or a list of Chat Completions content parts)."""
    message_id_column: str | None = None
    """Column holding each message's id (kept in the report's item map)."""
    timestamp_column: str | None = None
    """Column holding each message's time (a timestamp or Unix seconds)."""
    tool_calls_column: str | None = None
    """JSON of Chat Completions `tool_calls` on assistant rows."""
    tool_call_id_column: str | None = None
    """Column holding the call id a tool row answers."""
    name_column: str | None = None
    """Column holding the author's or tool's name."""
    metadata_columns: tuple[str, ...] = ()
    """Columns copied into the conversation's metadata: a value shared by every row as it is,
    values that vary as the JSON of `{row id: value}`; what exceeds the API's metadata limits is
    a `metadata_truncated` finding with the values."""
    lone_surrogates: Literal["fail", "replace"] = "fail"
    """A lone UTF-16 surrogate in a JSON column (or invalid UTF-8 in a SQLite text): fail that
    conversation, or migrate it with U+FFFD in its place (`lone_surrogate_replaced`)."""
    message_json_column: str | None = None
    """One JSON column holding a whole Chat Completions message per row."""
    messages_json_column: str | None = None
    """One JSON column holding a whole Chat Completions messages array: one row per conversation."""

    batch_size: int = Field(default=1000, ge=1)
    """Rows fetched per round trip from the server-side cursor."""
    where: str | None = None
    """A SQL condition over the rows' columns: only conversations with a row that meets it are
    read (whole, every row of theirs)."""
    since: datetime | None = None
    """Only conversations with a message at or after this time (the timestamp column of the
    preset or mapping); a time without a zone is UTC."""

    @model_validator(mode="after")
    def _check_mapping(self) -> SqlSourceConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of `url` and `url_env`")
        if self.table is not None and self.query is not None:
            raise ValueError("give `table` or `query`, not both")
        mapping = [name for name in _MAPPING_FIELDS if getattr(self, name)]
        if self.preset is not None:
            if self.query is not None:
                raise ValueError(f"preset {self.preset!r} reads tables; `query` needs no preset")
            allowed = _PRESET_FIELDS[self.preset]
            extra = [name for name in mapping if name not in allowed]
            if extra:
                raise ValueError(f"preset {self.preset!r} does not take {', '.join(extra)}")
            if self.sessions_table is not None and self.preset != "agents-sdk":
                raise ValueError("`sessions_table` applies to the agents-sdk preset only")
            return self
        if self.sessions_table is not None:
            raise ValueError("`sessions_table` applies to the agents-sdk preset only")
        if self.table is None and self.query is None:
            raise ValueError("give a `table` or a `query` (or choose a `preset`)")
        if self.conversation_column is None:
            raise ValueError("give the `conversation_column` that identifies a conversation")
        shapes = [
            name
            for name, used in (
                ("role_column + content_column", self.role_column or self.content_column),
                ("message_json_column", self.message_json_column),
                ("messages_json_column", self.messages_json_column),
            )
            if used
        ]
        if len(shapes) != 1:
            raise ValueError(
                "map messages one way: role_column + content_column, message_json_column or "
                f"messages_json_column (got {', '.join(shapes) or 'none'})"
            )
        if shapes[0].startswith("role") and not (self.role_column and self.content_column):
            raise ValueError("`role_column` and `content_column` go together")
        per_row = ("tool_calls_column", "tool_call_id_column", "name_column", "content_json")
        per_row_used = [name for name in per_row if getattr(self, name)]
        if not shapes[0].startswith("role") and per_row_used:
            raise ValueError(f"{', '.join(per_row_used)} need role_column + content_column")
        ordered = self.order_columns or self.message_id_column or self.messages_json_column
        if self.query is not None and not ordered:
            raise ValueError("a `query` needs `order_columns` or `message_id_column`")
        return self


_MAPPING_FIELDS = (
    "conversation_column",
    "order_columns",
    "role_column",
    "content_column",
    "content_json",
    "message_id_column",
    "timestamp_column",
    "tool_calls_column",
    "tool_call_id_column",
    "name_column",
    "metadata_columns",
    "message_json_column",
    "messages_json_column",
)
_PRESET_FIELDS: dict[str, tuple[str, ...]] = {
    "langchain": ("conversation_column",),
    "agents-sdk": (),
    "llamaindex": (),
}


class AssistantsLiveSourceConfig(_Config):
    """Threads read live from an Assistants-compatible server through the `openai` SDK."""

    kind: Literal["assistants_live"] = "assistants_live"
    base_url: str | None = None
    """The server's API base URL (default: the `openai` SDK's); a query in it (`?api-version=`)
    goes on every call."""
    azure_endpoint: str | None = None
    """An Azure OpenAI resource or Foundry project endpoint (`adapters.assistants.azure`)."""
    api_version: str | None = None
    """With `azure_endpoint`: the `api-version` (default: the one the service needs)."""
    all_threads: bool = False
    """Enumerate every thread the service lists (the Foundry Agent Service can)."""
    thread_ids: tuple[str, ...] = ()
    """Thread ids to read (or give a file or a query below)."""
    thread_ids_file: Path | None = None
    """A text file with one thread id per line (blank lines and `#` comments ignored)."""
    thread_ids_query: str | None = None
    """SQL whose first column is a thread id, run on `thread_ids_url` (or `thread_ids_url_env`)."""
    thread_ids_url: str | None = None
    """SQLAlchemy URL of the database holding the thread ids, without a password."""
    thread_ids_url_env: str | None = None
    """Name of an environment variable holding that URL (may include a password)."""
    include_run_steps: bool = True
    """Fetch runs and run steps, so tool calls and hosted tool steps are migrated too."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the server's API key."""
    resolve_filenames: bool = False
    """Look up file names through the Files API, so file citations can be mapped."""


SourceConfig = Annotated[
    JsonSourceConfig | SqlSourceConfig | AssistantsLiveSourceConfig, Field(discriminator="kind")
]
