"""Files written so that a reader never sees half of one: one atomic write for the project.

Every file the library writes for others to read (a model folder, its manifest, the
registry's pointer, a resume checkpoint, a cached copy of a package's weights) is written
to a temporary name in the same folder and renamed into place, so a crash or a second
process leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None], *, durable: bool = False) -> Path:
    """Write ``path`` through ``write(fh)`` on a temporary file renamed into place.

    ``durable`` also flushes the file to disk before the rename (a checkpoint that must
    survive a power cut, not just a crash of this process).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | Path, text: str, *, durable: bool = False) -> Path:
    return write_atomic(path, lambda fh: fh.write(text.encode("utf-8")), durable=durable)


def write_json_atomic(path: str | Path, data, *, default=None, durable: bool = False) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, default=default) + "\n", durable=durable)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill; on success it replaces ``path`` in one rename.

    An existing ``path`` is moved aside first and removed after, so readers see the old
    folder or the new one. On an error nothing at ``path`` changes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def cache_folder() -> Path:
    """Where derived files (plain copies of weights, embeddings) are kept: $XDG_CACHE_HOME/feedback-nlp."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "feedback-nlp"


def plain_copy(source: Path, stem: str, write: Callable[[Path, BinaryIO], None], suffix: str = ".npz") -> Path:
    """An uncompressed copy of a package's compressed model file, kept in the cache folder.

    ``write(source, fh)`` writes the copy; it runs once, atomically, and the copy is keyed by
    the source's size and mtime (a new package version makes a new one). Raises OSError
    where nothing can be written; callers fall back to the package's own loading. A ``.npy``
    copy can be memory-mapped: only the pages a process reads become resident.
    """
    stat = source.stat()
    plain = cache_folder() / f"{stem}-{stat.st_size}-{int(stat.st_mtime)}{suffix}"
    if not plain.is_file():
        write_atomic(plain, lambda fh: write(source, fh))
    return plain
