"""Shared test set-up: nothing a test computes is written outside its temporary directories."""

import tempfile

import pytest
import torch
from case_ids import readable_id, unselectable


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Reference numbers are cached in a per-session directory, never in the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ACTMINE_CACHE_DIR", str(tmp_path_factory.mktemp("actmine-cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _session_tmpdir(tmp_path_factory):
    """TMPDIR (and this process's `tempfile`) is a per-session directory that pytest prunes: what
    libraries leave in the temporary directory -- Dask's scratch-space locks, torch_geometric's
    templates, Jupyter's connection files -- goes there, not into the machine's /tmp."""
    mp = pytest.MonkeyPatch()
    directory = str(tmp_path_factory.mktemp("tmpdir"))
    mp.setenv("TMPDIR", directory)
    mp.setattr(tempfile, "tempdir", directory)
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _library_registry_restored():
    """A test that registers activations in the library's registry (a generated pack loaded with
    `activations.load_pack`) leaves it as it found it: a later test in the same worker (any order,
    any xdist schedule) sees the library's own activations only."""
    from actmine.activations.registry import REGISTRY

    saved = [dict(table) for table in (REGISTRY._entries, REGISTRY._aliases, REGISTRY._by_class)]
    yield
    for table, before in zip((REGISTRY._entries, REGISTRY._aliases, REGISTRY._by_class), saved):
        table.clear()
        table.update(before)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One thread per test process, as in the lab's workers (and results do not depend on it)."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def mixed_suite():
    """Tasks of input widths 1, 2, 3 and 5 (the ensemble pads them to 5), two seeds each."""
    from actmine.lab.tasks import Suite, feynman, harmonic, polynomial

    return Suite(
        "mixed",
        (
            polynomial(dim=1, seed=0),
            polynomial(dim=3, seed=1, degree=2, n_terms=3),
            harmonic(seed=0),
            feynman("I.29.4"),
            feynman("II.2.42"),
        ),
        (0, 1),
    )


@pytest.fixture()
def restore_registry():
    """Tests that register activations in the global registry leave it as they found it."""
    from actmine.activations import REGISTRY

    saved = (dict(REGISTRY._entries), dict(REGISTRY._aliases), dict(REGISTRY._by_class))
    yield REGISTRY
    REGISTRY._entries, REGISTRY._aliases, REGISTRY._by_class = saved


@pytest.fixture()
def loopback_dask_cluster():
    """A one-worker Dask cluster in this process (threads, no nanny), listening on 127.0.0.1 only,
    no dashboard: a running cluster to hand to `--scheduler`."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address=None,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
    ) as cluster:
        yield cluster


def pytest_make_parametrize_id(config, val, argname):
    """A parameter's text (a program, a message) shown in the id readably and without escapes, so
    that every test can be re-run by its node id (see case_ids.py)."""
    if isinstance(val, (str, bytes)):
        return readable_id(val if isinstance(val, str) else val.decode("latin-1"))
    return None


def pytest_collection_modifyitems(config, items):
    bad = unselectable([item.nodeid for item in items])
    if bad:
        raise pytest.UsageError(
            f"{len(bad)} test id(s) cannot be selected again by node id (they hold an escape), e.g. {'; '.join(bad[:3])}; "
            "build explicit ids= with tests/case_ids.readable_id"
        )
