"""Which files of a JSON source are read, and why each of the others is not.

A directory is walked recursively in sorted path order. Files ending in `.json`, `.jsonl`,
`.ndjson` or `.jsonlines` are read; every other file is a `SkippedFile` with its reason (a
`.gz`, a `.txt`, an image), and so is a hidden file or folder (named once, not walked).

A ChatGPT data export is read as it arrives: the `.zip` (the source itself, or a file in a
source directory) is read in place, streaming each conversations file out of the archive with
`zipfile` (nothing is unzipped to disk). Its conversations are in `conversations.json`, or in
newer exports split into `conversations-000.json`, `conversations-001.json`, ...; every other
member (`user.json`, `message_feedback.json`, `chat.html`, images, ...) is skipped with its
reason. An unzipped export directory reads the same way: the export's side files beside a
conversations file are skipped by name, never read as (failed) conversations. A `.zip` that
holds no conversations file is skipped as a whole.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, cast

from pydantic import BaseModel, ConfigDict

from adapters.base import SourceOpenError

JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".jsonlines"})
JSON_SUFFIXES = frozenset({".json"}) | JSONL_SUFFIXES

CHATGPT_CONVERSATIONS = re.compile(r"conversations(-\d+)?\.json", re.IGNORECASE)
"""The conversations of a ChatGPT export: one file, or numbered parts in newer exports."""
CHATGPT_SIDE_FILES = {
    "user.json": "the account's profile",
    "user_settings.json": "the account's settings",
    "message_feedback.json": "thumbs up/down given on answers",
    "model_comparisons.json": "answers compared while regenerating",
    "shared_conversations.json": "the list of shared links",
    "export_manifest.json": "the export's manifest",
    "conversation_asset_file_names.json": "the names of attached files",
    "library_files.json": "the file library's metadata",
    "chat.html": "the export's HTML viewer of the same conversations",
}
"""Files of a ChatGPT export that are not conversations, with what they hold."""
_MEDIA = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".dat", ".wav", ".mp3", ".m4a", ".mp4", ".pdf"}
)
_COMPRESSED = frozenset({".gz", ".bz2", ".xz", ".zst", ".7z", ".tar", ".tgz"})


class SkippedFile(BaseModel):
    """A file of the source that is not read, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    """Relative to the source (`export.zip/user.json` for a member of an archive)."""
    reason: str


@dataclass(frozen=True)
class ZipMember:
    """One file inside a zip archive, opened as a stream straight from the archive."""

    archive: Path
    name: str
    size: int
    """Uncompressed bytes."""

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    def open(self, mode: str = "rb") -> BinaryIO:
        """The member's bytes, decompressed as they are read."""
        if mode != "rb":
            raise ValueError("a zip member opens for binary reading only")
        archive = zipfile.ZipFile(self.archive)
        try:
            return cast(BinaryIO, archive.open(self.name))
        finally:
            archive.close()  # the open member keeps the archive's file until it is closed

    def __str__(self) -> str:
        return f"{self.archive}/{self.name}"


SourceFile = Path | ZipMember
"""A file the JSON reader reads: on disk, or inside a ChatGPT export's zip archive."""


@dataclass
class Listing:
    """The files of a source to read, in order, and the files that are not read."""

    files: list[SourceFile] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def list_source(root: Path) -> Listing:
    """What `root` (a file, a `.zip` export or a directory) gives to read, and what it skips."""
    listing = Listing()
    if root.is_dir():
        _walk(root, root, listing)
    elif root.suffix.lower() == ".zip":
        if not _add_archive(root, root.name, listing):
            raise SourceOpenError(
                f"{root} is a zip archive without a ChatGPT export's conversations.json "
                "(or conversations-000.json, ...); unzip it and give the directory"
            )
    else:
        listing.files.append(root)
    return listing


def file_size(file: SourceFile) -> int:
    """Bytes of the file (uncompressed, for a member of an archive)."""
    return file.size if isinstance(file, ZipMember) else file.stat().st_size


def _walk(root: Path, directory: Path, listing: Listing) -> None:
    entries = sorted(directory.iterdir(), key=lambda path: path.name)
    names = {entry.name.lower() for entry in entries if entry.is_file()}
    export = any(CHATGPT_CONVERSATIONS.fullmatch(name) for name in names) and bool(
        names & CHATGPT_SIDE_FILES.keys()
    )
    for entry in entries:
        relname = entry.relative_to(root).as_posix()
        if entry.name.startswith("."):
            kind = "folder" if entry.is_dir() else "file"
            listing.skipped.append(SkippedFile(path=relname, reason=f"a hidden {kind}"))
        elif entry.is_dir():
            _walk(root, entry, listing)
        elif not entry.is_file():
            listing.skipped.append(SkippedFile(path=relname, reason="not a regular file"))
        elif export and entry.name.lower() in CHATGPT_SIDE_FILES:
            listing.skipped.append(_side_file(relname, entry.name))
        elif entry.suffix.lower() in JSON_SUFFIXES:
            listing.files.append(entry)
        elif entry.suffix.lower() == ".zip":
            if not _add_archive(entry, relname, listing):
                listing.skipped.append(
                    SkippedFile(
                        path=relname,
                        reason="a zip archive that is not a ChatGPT export (no "
                        "conversations.json in it); unzip it to migrate its files",
                    )
                )
        else:
            listing.skipped.append(SkippedFile(path=relname, reason=_other_reason(entry.suffix)))


def _add_archive(archive: Path, relname: str, listing: Listing) -> bool:
    """Add a ChatGPT export's conversations files (True), or nothing if it is not one."""
    try:
        with zipfile.ZipFile(archive) as opened:
            members = [info for info in opened.infolist() if not info.is_dir()]
    except (OSError, zipfile.BadZipFile) as exc:
        raise SourceOpenError(f"cannot read the zip archive {archive}: {exc}") from exc
    members.sort(key=lambda info: info.filename)
    conversations = [
        info
        for info in members
        if CHATGPT_CONVERSATIONS.fullmatch(PurePosixPath(info.filename).name)
    ]
    if not conversations:
        return False
    for info in members:
        if info in conversations:
            listing.files.append(ZipMember(archive, info.filename, info.file_size))
            continue
        where = f"{relname}/{info.filename}"
        name = PurePosixPath(info.filename).name
        if name.lower() in CHATGPT_SIDE_FILES:
            listing.skipped.append(_side_file(where, name))
        else:
            suffix = PurePosixPath(name).suffix
            reason = (
                "not a conversations file of the ChatGPT export"
                if suffix.lower() in JSON_SUFFIXES
                else _other_reason(suffix)
            )
            listing.skipped.append(SkippedFile(path=where, reason=reason))
    return True


def _is_conversations(name: str) -> bool:
    return CHATGPT_CONVERSATIONS.fullmatch(PurePosixPath(name).name) is not None


def _side_file(path: str, name: str) -> SkippedFile:
    what = CHATGPT_SIDE_FILES[name.lower()]
    return SkippedFile(path=path, reason=f"part of the ChatGPT export, not conversations: {what}")


def _other_reason(suffix: str) -> str:
    lowered = suffix.lower()
    if lowered in _COMPRESSED:
        return f"a compressed file ({suffix}); decompress it to migrate what it holds"
    if lowered in _MEDIA:
        return f"a media or attachment file ({suffix}); attachments are not migrated"
    shown = suffix or "no extension"
    return f"not a JSON or JSON Lines file ({shown}); only .json, .jsonl and .ndjson are read"
