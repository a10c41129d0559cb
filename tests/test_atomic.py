"""Atomic publication (mmadapt.files.atomic) and content digests (mmadapt.files.digests)."""
from __future__ import annotations

import json
import os
import stat

import pytest

from mmadapt.files import atomic
from mmadapt.files.atomic import publish_dir, staging_dir, write_dir_atomic, write_text_atomic
from mmadapt.files.digests import digest, json_digest, path_digest


@pytest.fixture
def usual_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _model_dir(root, text):
    return write_dir_atomic(root / "model", lambda d: (d / "config.json").write_text(text) and (d / "sub").mkdir())


def test_published_files_and_directories_are_readable_by_others(tmp_path, usual_umask):
    model = _model_dir(tmp_path, "{}")
    assert _mode(model) == 0o755 and _mode(model / "config.json") == 0o644
    assert _mode(write_text_atomic(tmp_path / "marker.json", "{}")) == 0o644
    assert _mode(staging_dir(tmp_path / "other")) == 0o755


def test_replacing_a_directory_leaves_the_new_one_and_no_leftovers(tmp_path):
    _model_dir(tmp_path, "old")
    _model_dir(tmp_path, "new")
    assert (tmp_path / "model" / "config.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def _fail_on_call(n, real):
    calls = []

    def replace(src, dst):
        calls.append(src)
        if len(calls) == n:
            raise OSError("killed here")
        return real(src, dst)

    return replace


def test_a_failure_while_swapping_leaves_the_old_model_in_place(tmp_path, monkeypatch):
    _model_dir(tmp_path, "old")
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: (_ for _ in ()).throw(OSError("killed here")))
    with pytest.raises(OSError, match="killed here"):
        _model_dir(tmp_path, "new")
    assert (tmp_path / "model" / "config.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_without_an_atomic_exchange_a_failure_between_the_renames_puts_the_old_model_back(tmp_path, monkeypatch):
    _model_dir(tmp_path, "old")
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    # call 1 renames the old model aside, call 2 (the new one in) fails, call 3 puts the old one back
    monkeypatch.setattr(atomic.os, "replace", _fail_on_call(2, os.replace))
    with pytest.raises(OSError, match="killed here"):
        _model_dir(tmp_path, "new")
    monkeypatch.undo()
    assert (tmp_path / "model" / "config.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_where_the_filesystem_can_the_swap_is_one_atomic_exchange(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    if not atomic._exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("no renameat2 RENAME_EXCHANGE on this filesystem")
    assert (tmp_path / "b" / "x").read_text() == "a" and not (tmp_path / "a" / "x").exists()


def test_the_old_directory_stays_whole_while_the_new_one_is_written(tmp_path):
    _model_dir(tmp_path, "old")
    seen = []
    write_dir_atomic(tmp_path / "model", lambda d: seen.append((tmp_path / "model" / "config.json").read_text()))
    assert seen == ["old"]


def test_a_directory_that_fails_to_write_leaves_the_old_one_and_no_staging_directory(tmp_path):
    _model_dir(tmp_path, "old")

    def broken(staged):
        (staged / "config.json").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_dir_atomic(tmp_path / "model", broken)
    assert (tmp_path / "model" / "config.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_cache_entry_published_first_is_kept(tmp_path):
    _model_dir(tmp_path, "first")
    write_dir_atomic(tmp_path / "model", lambda d: (d / "config.json").write_text("second"), replace=False)
    assert (tmp_path / "model" / "config.json").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_publish_dir_moves_a_directory_into_an_empty_place(tmp_path):
    staged = staging_dir(tmp_path / "out")
    (staged / "a").write_text("x")
    assert publish_dir(staged, tmp_path / "out") == tmp_path / "out"
    assert (tmp_path / "out" / "a").read_text() == "x" and not staged.exists()


def test_digests_are_the_key_sorted_json_sha256_that_existing_caches_were_keyed_on():
    import hashlib

    payload = {"b": [1, 2], "a": "x"}
    expected = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    assert json_digest(payload) == expected and json_digest(payload, 24) == expected[:24]
    assert digest("stage", payload) == json_digest(["stage", payload])


def test_a_directory_digest_changes_with_a_file_name_or_content(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("one")
    first = path_digest(tmp_path / "d")
    (tmp_path / "d" / "a.txt").rename(tmp_path / "d" / "b.txt")
    renamed = path_digest(tmp_path / "d")
    (tmp_path / "d" / "b.txt").write_text("two")
    assert len({first, renamed, path_digest(tmp_path / "d")}) == 3
