"""write_text_atomically: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from actmine.atomic_files import write_text_atomically


def test_the_old_file_stays_whole_until_the_rename_and_nothing_is_left_behind(tmp_path):
    path = tmp_path / "deep" / "er" / "report.html"
    assert write_text_atomically(path, "first") == path  # the directories are made
    seen = []

    def between() -> None:  # the new text is written, not yet renamed: readers still see the old
        temporaries = [p for p in path.parent.iterdir() if p != path]
        seen.append((path.read_text(encoding="utf-8"), [p.read_text(encoding="utf-8") for p in temporaries]))

    write_text_atomically(path, "second ✓", before_replace=between)
    assert seen == [("first", ["second ✓"])]
    assert path.read_text(encoding="utf-8") == "second ✓"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.html"]


def test_a_failure_before_the_rename_keeps_the_old_file(tmp_path):
    path = tmp_path / "config.yaml"
    write_text_atomically(path, "old: 1\n")

    def crash() -> None:
        raise KeyboardInterrupt

    try:
        write_text_atomically(path, "new: 2\n", before_replace=crash)
    except KeyboardInterrupt:
        pass
    assert path.read_text(encoding="utf-8") == "old: 1\n"


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300))
def test_any_text_round_trips_as_utf8(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("atomic") / "f.txt"
    write_text_atomically(path, text)
    assert path.read_bytes() == text.encode("utf-8")


def test_a_write_that_fails_leaves_no_temporary_and_a_cache_write_is_best_effort(tmp_path):
    import os

    import pytest

    from actmine.atomic_files import write_cache_file

    taken = tmp_path / "report.html"
    taken.mkdir()  # a directory where the file should go: the rename fails
    with pytest.raises(IsADirectoryError) as failed:
        write_text_atomically(taken, "text")
    assert failed.value.filename == str(taken) and failed.value.filename2 is None  # not the temporary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    assert not write_cache_file(taken, "text")  # a cache that cannot be written is not an error
    readonly = tmp_path / "cache"
    readonly.mkdir()
    os.chmod(readonly, 0o555)
    try:
        if not os.access(readonly, os.W_OK):  # root ignores the mode: nothing to show there
            assert not write_cache_file(readonly / "entry.json", "{}") and not list(readonly.iterdir())
    finally:
        os.chmod(readonly, 0o755)
    assert write_cache_file(tmp_path / "ok" / "entry.json", "{}")
