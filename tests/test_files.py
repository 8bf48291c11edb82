"""feedback_nlp.files: atomic writes and folders, and the cached plain copy of a package's file."""

import os

import pytest

from feedback_nlp.files import atomic_folder, plain_copy, write_atomic


def test_write_atomic_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text("old")

    def half_then_fail(fh):
        fh.write(b"half of the new")
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        write_atomic(path, half_then_fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temporary file left behind
    write_atomic(path, lambda fh: fh.write(b"new"))
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_atomic_folder_replaces_the_whole_folder_or_leaves_it_alone(tmp_path):
    path = tmp_path / "model"
    path.mkdir()
    (path / "stale.txt").write_text("old")
    (path / "kept.txt").write_text("old")

    with pytest.raises(RuntimeError):
        with atomic_folder(path) as tmp:
            (tmp / "kept.txt").write_text("new")
            raise RuntimeError("saving failed")
    assert sorted(p.name for p in path.iterdir()) == ["kept.txt", "stale.txt"]
    assert (path / "kept.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # the half-filled folder is gone

    with atomic_folder(path) as tmp:
        assert tmp != path and tmp.parent == tmp_path
        (tmp / "kept.txt").write_text("new")
    assert [p.name for p in path.iterdir()] == ["kept.txt"]  # replaced whole: nothing stale survives
    assert (path / "kept.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # neither the old folder nor the new one's temp


def test_plain_copy_is_written_once_and_keyed_by_the_source_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = tmp_path / "weights.npz.gz"
    source.write_bytes(b"compressed weights")
    writes = []

    def write(src, fh):
        writes.append(src)
        fh.write(b"plain " + src.read_bytes())

    first = plain_copy(source, "use-weights", write)
    assert first.parent == tmp_path / "cache" / "feedback-nlp" and first.name.startswith("use-weights-")
    assert first.read_bytes() == b"plain compressed weights" and writes == [source]
    assert plain_copy(source, "use-weights", write) == first and len(writes) == 1  # reused, not rewritten

    stat = source.stat()
    os.utime(source, (stat.st_atime, stat.st_mtime + 100))  # a new package version: same size, new mtime
    second = plain_copy(source, "use-weights", write)
    assert second != first and len(writes) == 2
    source.write_bytes(b"bigger compressed weights")
    os.utime(source, (stat.st_atime, stat.st_mtime + 100))
    third = plain_copy(source, "use-weights", write)
    assert third not in (first, second) and third.read_bytes() == b"plain bigger compressed weights"
    assert len(list(first.parent.iterdir())) == 3 and len(writes) == 3
    assert first.suffix == ".npz"  # the default kind of copy
    assert plain_copy(source, "table", write, suffix=".npy").name.endswith(".npy")  # one np.load can memory-map
