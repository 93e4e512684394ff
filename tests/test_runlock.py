"""One controller per run directory, and what `actmine search` refuses at start-up.

Real processes throughout: real `actmine search` controllers on a tiny configuration, a lock
holder killed with SIGKILL while its children live on, a `timeout` wrapper, `actmine report` and
`actmine export` reading a running search, and run directories that cannot be written.

A non-writable directory, as root: permission bits do not stop root, so those tests make a
read-only view of the directory (a read-only bind mount in a private user + mount namespace,
`unshare -rm`, which needs no privilege where user namespaces are enabled) and run the code under
test inside it. Where that is unavailable and we are not root, `chmod` does the same job;
otherwise the test is skipped with the reason. A path through a regular file (ENOTDIR) is tested
everywhere.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from actmine.evolve.database import SCHEMA_VERSION, DatabaseError, ProgramDatabase, ProgramRecord
from actmine.evolve.runlock import (
    LOCK_FILE,
    Holder,
    RunDirError,
    RunLock,
    RunLocked,
    controller_holds,
    read_holder,
)
from search_runs import programs, run_cli, write_tiny_config

ACTMINE = str(Path(sys.executable).with_name("actmine"))
EXIT_BUSY = 3


@pytest.fixture()
def config_file(tmp_path):
    """A search that runs on (budget 400) while the test looks at it."""
    return write_tiny_config(
        tmp_path, search={"budget": 400, "islands": 1, "heldout_top": 1}, executor={"workers": 1}, lab={"steps": 10}
    )


def search_now(config_file: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """A search expected to stop at start-up (the timeout only bounds a failure of the test)."""
    return subprocess.run(
        [ACTMINE, "search", "--config", str(config_file), "--run-dir", str(run_dir), "--quiet", *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def recorded(run_dir: Path) -> int:
    """How many programs a starting search has recorded (0 before its database is created)."""
    try:
        return len(programs(run_dir))
    except DatabaseError:  # no file yet, or the first controller has not migrated it yet
        return 0


def files(directory: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """{name: sha256} of every file in the directory: what "nothing was changed" compares."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name not in skip
    }


def wait_for(condition, what: str, process: subprocess.Popen | None = None, limit: float = 180) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the search ended while waiting for {what}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


def alive(pid: int) -> bool:
    """Running (a zombie is dead: it has closed its files, its locks with them)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def lock_is_free(run_dir: Path) -> bool:
    try:
        with RunLock(run_dir):
            return True
    except RunLocked:
        return False


def holders_of(run_dir: Path) -> list[str]:
    """The processes with the lock file open, for a failure message."""
    target, found = str((run_dir / LOCK_FILE).resolve()), []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == target for fd in fd_dir.iterdir()):
                found.append(f"{fd_dir.parent.name}: {(fd_dir.parent / 'cmdline').read_bytes()[:120]!r}")
        except OSError:
            continue
    return found


def kill_group(pid: int) -> None:
    """SIGKILL to what is left of a process group started by a test (nothing, at times)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


# --------------------------------------------------------------------------------------------
# The lock itself (real processes, no search)
# --------------------------------------------------------------------------------------------

HOLDER = r"""
import os, subprocess, sys, time
from actmine.evolve.runlock import RunLock

lock = RunLock(sys.argv[1]).acquire()
ready_r, ready_w = os.pipe()
forked = os.fork()
if forked == 0:                    # a child forked without exec (multiprocessing's "fork" method)
    os.write(ready_w, b"x")        # running: the fork hook that closes its copy of the lock has run
    time.sleep(120)
    os._exit(0)
os.read(ready_r, 1)                # on a busy machine the child may not have run yet when killed
spawned = subprocess.Popen(["sleep", "120"], close_fds=False)   # exec'd, even asked to keep descriptors
print(forked, spawned.pid, flush=True)
time.sleep(120)
"""


def test_a_second_lock_is_refused_with_the_holder_and_released_cleanly(tmp_path):
    run_dir = tmp_path / "run"
    with RunLock(run_dir) as lock:
        assert lock.held and (run_dir / LOCK_FILE).is_file()
        holder = read_holder(run_dir)
        assert holder.pid == os.getpid() and holder.command == tuple(sys.argv)
        with pytest.raises(RunLocked) as refused:  # another open file: refused even in this process
            RunLock(run_dir).acquire()
        assert refused.value.holder == holder
        assert str(run_dir) in str(refused.value) and f"pid {os.getpid()}" in str(refused.value)
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from actmine.evolve.runlock import RunLock; RunLock(sys.argv[1]).acquire()",
                str(run_dir),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.returncode != 0 and "RunLocked" in other.stderr and f"pid {os.getpid()}" in other.stderr
    assert not lock.held
    assert (run_dir / LOCK_FILE).read_text() == ""  # a clean release leaves no identity behind
    with RunLock(run_dir):  # and the next one takes it
        pass


def test_a_killed_holder_leaves_no_lock_even_while_its_children_live(tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        forked, spawned = (int(pid) for pid in holder.stdout.readline().split())
        assert read_holder(run_dir).pid == holder.pid
        with pytest.raises(RunLocked, match=f"pid {holder.pid}"):
            RunLock(run_dir).acquire()
        assert controller_holds(run_dir)  # a reader's probe sees the live holder
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert not controller_holds(run_dir)  # and sees that it is gone, its identity left in the file
        assert read_holder(run_dir, attempts=1).pid == holder.pid
        assert alive(forked) and alive(spawned)  # the children outlive the holder ...
        with RunLock(run_dir) as taken:  # ... and hold nothing: no stale lock
            assert taken.held and read_holder(run_dir).pid == os.getpid()
    finally:
        kill_group(holder.pid)


def test_the_lock_of_a_wrapped_process_is_the_process_s_own(tmp_path):
    """`timeout` (like `nohup`, a shell) starts the real holder as its child: the child holds the
    lock and writes its own pid; killing the wrapper leaves the lock with the child."""
    run_dir = tmp_path / "run"
    wrapper = subprocess.Popen(
        ["timeout", "120", sys.executable, "-c", HOLDER, str(run_dir)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wrapper.stdout.readline()
        child = read_holder(run_dir).pid
        assert child != wrapper.pid and parent_of(child) == wrapper.pid
        wrapper.send_signal(signal.SIGKILL)  # the user's kill -9 hits the wrapper
        wrapper.wait()
        assert alive(child)
        with pytest.raises(RunLocked, match=f"pid {child}"):
            RunLock(run_dir).acquire()
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: not alive(child), "the holder to die")
        with RunLock(run_dir):
            pass
    finally:
        kill_group(wrapper.pid)


def test_a_busy_run_is_refused_before_anything_is_read_or_written(tmp_path, config_file):
    """The second `actmine search` stops before it opens the database or writes config.yaml."""
    run_dir = tmp_path / "run"
    with ProgramDatabase(run_dir / "programs.sqlite") as db:
        db.create_run({"note": "someone else's run"})
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        holder.stdout.readline()
        before = files(run_dir)
        done = search_now(config_file, run_dir, "--budget", "3")
        assert done.returncode == EXIT_BUSY
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert f"pid {holder.pid}" in done.stderr and str(run_dir) in done.stderr
        assert files(run_dir) == before and not (run_dir / "config.yaml").exists()
    finally:
        kill_group(holder.pid)


# --------------------------------------------------------------------------------------------
# Real controllers
# --------------------------------------------------------------------------------------------


def test_one_controller_per_run_and_readers_beside_it(tmp_path, config_file):
    """A search under `timeout`: the controller (not the wrapper) holds the run, also after the
    wrapper was killed with SIGKILL; a second search is refused at once, naming it; `actmine report` and
    `actmine export` read the run while it runs; the controller killed with SIGKILL (its workers
    left alive) leaves no lock behind. (A new controller resuming after a kill -9, under the lock,
    is `test_search.py`'s kill -9 test; the many moments are `test_crash_stress.py`'s.)"""
    run_dir = tmp_path / "run"
    first = subprocess.Popen(
        ["timeout", "600", ACTMINE, "search", "--config", str(config_file), "--run-dir", str(run_dir), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(lambda: recorded(run_dir) >= 2, "the first search's programs", first)
        controller = read_holder(run_dir).pid
        assert controller != first.pid and parent_of(controller) == first.pid
        assert "search" in read_holder(run_dir).command
        first.send_signal(signal.SIGKILL)  # the user's kill -9 hits the wrapper ...
        first.wait()
        assert alive(controller)  # ... and the controller runs on

        # at the same time: a second controller, a report and an export of the running search
        second = run_cli(config_file, run_dir)
        report = subprocess.Popen(
            [ACTMINE, "report", str(run_dir), "--top", "1", "--out", str(tmp_path / "live.html")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        export = subprocess.Popen(
            [ACTMINE, "export", str(run_dir), "--top", "1", "--out", str(tmp_path / "pack.py")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _, refused = second.communicate(timeout=120)
        assert second.returncode == EXIT_BUSY, refused
        assert len(refused.strip().splitlines()) == 1 and "Traceback" not in refused
        assert str(run_dir) in refused and f"pid {controller}" in refused
        for reader, written, mark in ((report, "live.html", "<html"), (export, "pack.py", "PROGRAMS")):
            _, err = reader.communicate(timeout=300)
            assert reader.returncode == 0, err
            assert mark in (tmp_path / written).read_text()
        assert alive(controller)  # it ran on beside its readers

        os.kill(controller, signal.SIGKILL)  # the controller alone; its workers may linger
        wait_for(lambda: not alive(controller), "the controller to die")
        # no stale lock: the next controller may start (a child the controller was forking when it was
        # killed holds the file until it execs, which closes it: O_CLOEXEC; so allow a few seconds)
        wait_for(lambda: lock_is_free(run_dir), f"the lock to be released (held by {holders_of(run_dir)})", limit=20)
    finally:
        kill_group(first.pid)
    with sqlite3.connect(run_dir / "programs.sqlite") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()


# --------------------------------------------------------------------------------------------
# Start-up checks through `actmine search`: exit 2, one line, nothing changed
# --------------------------------------------------------------------------------------------


def _newer(path: Path) -> str:
    ProgramDatabase(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    connection.close()
    return f"schema version {SCHEMA_VERSION + 5}: a newer actmine"


def _not_a_database(path: Path) -> str:
    path.write_text("search:\n  budget: 3\n")  # e.g. a config file saved under the wrong name
    return "not an SQLite database"


def _truncated(path: Path) -> str:
    with ProgramDatabase(path) as db:
        run = db.create_run({})
        for index in range(30):
            db.add_program(
                ProgramRecord(
                    run_id=run,
                    proposal_index=index,
                    status="failed",
                    fitness=None,
                    source=f"def activation_function(x):\n    return x  # {'#' * 400} {index}\n",
                )
            )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 123])
    return "not a usable program database"


@pytest.mark.parametrize("make", [_newer, _not_a_database, _truncated], ids=["newer", "not-a-database", "truncated"])
def test_search_refuses_an_unusable_database_and_changes_nothing(tmp_path, config_file, make):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    expected = make(run_dir / "programs.sqlite")
    (run_dir / "config.yaml").write_text(config_file.read_text())
    before = files(run_dir)
    done = search_now(config_file, run_dir, "--budget", "3")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert expected in done.stderr and str(run_dir / "programs.sqlite") in done.stderr
    assert files(run_dir, skip=(LOCK_FILE,)) == before  # byte for byte, and no -wal/-shm beside it


# --------------------------------------------------------------------------------------------
# Run directories that cannot be written
# --------------------------------------------------------------------------------------------


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as directory:
        probe = subprocess.run(
            [
                "unshare",
                "-rm",
                "sh",
                "-c",
                'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && ! touch "$1/x" 2>/dev/null',
                "sh",
                directory,
            ],
            capture_output=True,
            timeout=30,
        )
    return probe.returncode == 0


def run_with_read_only(directory: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """Run `argv` seeing `directory` read-only, whoever we are (see the module doc)."""
    if _unshare_works():
        script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
        return subprocess.run(
            ["unshare", "-rm", "sh", "-c", script, "sh", str(directory), *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if os.geteuid() != 0:
        mode = directory.stat().st_mode
        directory.chmod(0o555)
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=120)
        finally:
            directory.chmod(mode)
    pytest.skip("running as root without user namespaces: no way to make a directory read-only for root")


def _existing_run(run_dir: Path, config_file: Path) -> None:
    with ProgramDatabase(run_dir / "programs.sqlite") as db:
        db.create_run({"note": "an earlier run"})
    (run_dir / "config.yaml").write_text(config_file.read_text())


def test_search_refuses_a_read_only_run_directory_and_changes_nothing(tmp_path, config_file):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _existing_run(run_dir, config_file)
    before = files(run_dir)
    done = run_with_read_only(
        run_dir,
        [ACTMINE, "search", "--config", str(config_file), "--run-dir", str(run_dir), "--quiet", "--budget", "3"],
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert f"{run_dir} is not writable" in done.stderr
    assert files(run_dir) == before


def test_the_database_refuses_a_read_only_directory_before_writing(tmp_path, config_file):
    """The check in `ProgramDatabase` itself (for callers without the run lock)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _existing_run(run_dir, config_file)
    before = files(run_dir)
    script = textwrap.dedent("""
        import sys
        from actmine.evolve.database import DatabaseError, ProgramDatabase
        try:
            ProgramDatabase(sys.argv[1])
        except DatabaseError as exc:
            print(exc)
            sys.exit(2)
    """)
    done = run_with_read_only(run_dir, [sys.executable, "-c", script, str(run_dir / "programs.sqlite")])
    assert done.returncode == 2, done.stderr
    assert f"the directory {run_dir} is not writable" in done.stdout
    assert files(run_dir) == before


def test_a_run_directory_through_a_file_is_refused(tmp_path, config_file):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    with pytest.raises(RunDirError, match="cannot create the run directory"):
        RunLock(blocker / "run").acquire()
    with pytest.raises(DatabaseError, match="cannot create the directory"):
        ProgramDatabase(blocker / "run" / "programs.sqlite")
    done = search_now(config_file, blocker / "run", "--budget", "3")
    assert done.returncode == 2 and "cannot create the run directory" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert blocker.read_text() == "not a directory\n"


def test_a_run_directory_that_is_a_link_to_a_directory_not_made_yet_is_made_there(tmp_path):
    """runs/x -> /big/disk/x before the first search: its target is made, where the link says
    (mkdir on the link itself failed with "File exists", which said to give a writable --run-dir)."""
    link, target = tmp_path / "link", tmp_path / "disk" / "x"
    link.symlink_to(target)
    with RunLock(link):
        assert target.is_dir() and (target / LOCK_FILE).is_file() and link.is_symlink()
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(RunDirError, match="cannot create the run directory"):  # a link to itself: one line
        RunLock(loop).acquire()


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(tmp_path):
    run_dir, victim = tmp_path / "run", tmp_path / "victim.txt"
    run_dir.mkdir()
    victim.write_text("keep me\n")
    (run_dir / LOCK_FILE).symlink_to(victim)
    with pytest.raises(RunDirError, match="symbolic link"):
        RunLock(run_dir).acquire()
    assert victim.read_text() == "keep me\n"


@pytest.mark.parametrize("started", ["1e300", "Infinity", '"soon"', "-1e300"])
def test_a_holder_record_with_an_impossible_time_reads_as_unknown(started):
    text = '{"pid": 7, "host": "h", "started": %s, "command": ["actmine"]}' % started
    assert Holder.from_json(text) is None
    assert "another actmine search is running" in str(RunLocked(Path("/r"), Holder.from_json(text)))


# --------------------------------------------------------------------------------------------
# Readers: is a "running" run still running?
# --------------------------------------------------------------------------------------------


def test_the_probe_tells_a_held_lock_from_a_free_one_and_never_writes(tmp_path):
    run_dir = tmp_path / "run"
    assert not controller_holds(run_dir)  # no directory, no lock file: nobody runs there
    with RunLock(run_dir):
        assert controller_holds(run_dir)  # another open file of this process: the lock is held
    before = (run_dir / LOCK_FILE).stat()
    assert not controller_holds(run_dir)
    after = (run_dir / LOCK_FILE).stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)


def test_a_lock_file_that_cannot_be_probed_keeps_what_the_database_says(tmp_path):
    """A FIFO must not hang the reader, a link is not followed: both read as "cannot tell" (held)."""
    fifo, link = tmp_path / "fifo", tmp_path / "link"
    fifo.mkdir(), link.mkdir()
    os.mkfifo(fifo / LOCK_FILE)
    (tmp_path / "target").write_text("")
    (link / LOCK_FILE).symlink_to(tmp_path / "target")
    assert controller_holds(fifo) and controller_holds(link)


def test_acquire_waits_out_a_readers_probe_but_not_a_holder(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    RunLock(run_dir).acquire().release()
    probe = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH)  # a reader caught mid-probe ...
    timer = threading.Timer(0.05, lambda: os.close(probe))  # ... lets go at once
    timer.start()
    try:
        with RunLock(run_dir) as taken:
            assert taken.held
    finally:
        timer.join()
    with RunLock(run_dir):  # a holder is still refused, after the same short wait
        started = time.monotonic()
        with pytest.raises(RunLocked):
            RunLock(run_dir).acquire()
        assert time.monotonic() - started < 5


def test_readers_see_a_run_whose_controller_is_gone_as_interrupted(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with ProgramDatabase(run_dir / "programs.sqlite") as db:
        run_id = db.create_run({})
    with RunLock(run_dir):
        with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
            assert db.get_run(run_id).status == "running"
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        assert db.get_run(run_id).status == db.latest_run().status == "interrupted"
        assert [r.status for r in db.runs()] == ["interrupted"]
    with ProgramDatabase(run_dir / "programs.sqlite") as db:  # the file itself is unchanged
        assert db.get_run(run_id).status == "running"
        db.update_run(run_id, status="finished")
    with ProgramDatabase(run_dir / "programs.sqlite", readonly=True) as db:
        assert db.get_run(run_id).status == "finished"  # only "running" is probed
