"""The ogbg-molhiv benchmark on a miniature dataset in OGB's own on-disk format, offline.

The fixture writes ``ogbg_molhiv/`` the way OGB ships it (``raw/*.csv.gz`` with one row per bond
and ``add_inverse_edge``, features from ``ogb.utils.smiles2graph``, ``split/scaffold/*.csv.gz``,
``mapping/mol.csv.gz``, ``RELEASE_v1.txt``) from 48 real molecules, labelled 1 when they contain
nitrogen, and the real ``PygGraphPropPredDataset`` reads it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("torch_geometric")
pytest.importorskip("rdkit")
pytest.importorskip("sklearn")

from actmine.transfer import molecules  # noqa: E402
from actmine.transfer.base import BenchmarkScore, DatasetMissing  # noqa: E402
from actmine.transfer.molecules import MolHIV  # noqa: E402

try:
    molecules.import_ogb()  # before anything else imports ogb: no version-check thread
except ImportError:
    pytest.skip("ogb is not installed", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]

WITH_N = [
    "CCN",
    "c1ccncc1",
    "CC(=O)Nc1ccc(O)cc1",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "NCCc1ccc(O)c(O)c1",
    "CC(C)NCC(O)c1ccc(O)c(O)c1",
    "c1ccc2[nH]ccc2c1",
    "CN(C)C",
    "NC(N)=O",
    "CC#N",
    "Nc1ccccc1",
    "NCC(=O)O",
    "CC(N)C(=O)O",
    "C1CCNCC1",
    "c1c[nH]cn1",
    "CN1CCC[C@H]1c1cccnc1",
    "Nc1ncnc2[nH]cnc12",
    "CC(=O)Nc1ccccc1",
    "NCCO",
    "CNC(=O)Oc1cccc2ccccc12",
    "O=[N+]([O-])c1ccccc1",
    "CCN(CC)CC",
    "N#Cc1ccccc1",
    "CC(C)(C)NCC(O)c1ccccc1",
]
WITHOUT_N = [
    "CCO",
    "CC(=O)O",
    "c1ccccc1",
    "CC(=O)Oc1ccccc1C(=O)O",
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "OCC(O)CO",
    "C1CCCCC1",
    "CCCCCC",
    "Oc1ccccc1",
    "CC(C)=O",
    "OC(=O)c1ccccc1",
    "COc1ccccc1",
    "C=CC=C",
    "ClC(Cl)Cl",
    "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O",
    "Cc1ccccc1",
    "CCOC(C)=O",
    "c1ccc2ccccc2c1",
    "CC(C)O",
    "O=C1CCCCC1",
    "CCCCO",
    "FC(F)(F)c1ccccc1",
    "c1ccsc1",
    "CCS",
]


def _write_csv_gz(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for row in rows:
            f.write(",".join(str(v) for v in (row if isinstance(row, (list, tuple, np.ndarray)) else [row])) + "\n")


def write_molhiv(data_dir: Path) -> tuple[list[str], list[int], dict[str, list[int]]]:
    """``data_dir/ogbg_molhiv`` in OGB's layout; returns (smiles, labels, split)."""
    from ogb.utils import smiles2graph

    smiles, labels = [], []
    for pos, neg in zip(WITH_N, WITHOUT_N):  # interleaved: index 2k has N, 2k+1 has not
        smiles += [pos, neg]
        labels += [1, 0]
    split = {"train": [], "valid": [], "test": []}
    for k in range(len(WITH_N)):  # 16/4/4 pairs: both classes in every split
        part = "train" if k < 16 else "valid" if k < 20 else "test"
        split[part] += [2 * k, 2 * k + 1]

    root = data_dir / "ogbg_molhiv"
    edges, edge_feats, node_feats, n_nodes, n_edges = [], [], [], [], []
    for s in smiles:
        g = smiles2graph(s)
        # OGB stores every bond once (add_inverse_edge=True); smiles2graph lists (i, j), (j, i)
        edges += g["edge_index"][:, 0::2].T.tolist()
        edge_feats += g["edge_feat"][0::2].tolist()
        node_feats += g["node_feat"].tolist()
        n_nodes.append(g["num_nodes"])
        n_edges.append(g["edge_index"].shape[1] // 2)
    raw = root / "raw"
    _write_csv_gz(raw / "edge.csv.gz", edges)
    _write_csv_gz(raw / "edge-feat.csv.gz", edge_feats)
    _write_csv_gz(raw / "node-feat.csv.gz", node_feats)
    _write_csv_gz(raw / "num-node-list.csv.gz", n_nodes)
    _write_csv_gz(raw / "num-edge-list.csv.gz", n_edges)
    _write_csv_gz(raw / "graph-label.csv.gz", labels)
    for part, idx in split.items():
        _write_csv_gz(root / "split" / "scaffold" / f"{part}.csv.gz", idx)
    mapping = root / "mapping" / "mol.csv.gz"
    mapping.parent.mkdir(parents=True)
    with gzip.open(mapping, "wt") as f:
        f.write("HIV_active,smiles,mol_id\n")
        f.writelines(f"{y},{s},mini-{i}\n" for i, (s, y) in enumerate(zip(smiles, labels)))
    (root / "RELEASE_v1.txt").write_text("ogbg-molhiv miniature for tests\n")
    return smiles, labels, split


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A data directory with the raw files only (never processed; copy it before use)."""
    data_dir = tmp_path_factory.mktemp("molhiv-raw")
    return (data_dir, *write_molhiv(data_dir))


@pytest.fixture(scope="module")
def data_dir(pristine, tmp_path_factory):
    """A copy that the tests share; the first load processes it into ``processed/``."""
    target = tmp_path_factory.mktemp("molhiv") / "data"
    shutil.copytree(pristine[0], target)
    return target


@pytest.fixture()
def no_network(monkeypatch):
    """Every attempt to reach the network is recorded and refused."""
    attempts: list[str] = []

    def refuse(what):
        def _refuse(*args, **kwargs):
            attempts.append(f"{what}{args[1:] if what.startswith('socket.') else args}")
            raise OSError(f"network disabled in this test ({what})")

        return _refuse

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urlopen"))
    return attempts


TINY = dict(epochs=3, batch_size=8, hidden=16, layers=2, dropout=0.0, lr=1e-2)


def relu_factory():
    return nn.ReLU()


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------


def test_registered_with_protocol_attributes():
    from actmine.transfer.base import _BENCHMARKS

    assert _BENCHMARKS["molhiv"] is MolHIV
    assert MolHIV.name == "molhiv" and MolHIV.metric == "rocauc"
    bench = MolHIV()
    assert (bench.epochs, bench.batch_size, bench.hidden, bench.layers, bench.dropout, bench.lr) == (
        50,
        32,
        300,
        5,
        0.5,
        1e-3,
    )
    assert bench.max_train is None and bench.max_eval is None
    with pytest.raises(ValueError):
        MolHIV(epochs=0)
    with pytest.raises(TypeError):
        MolHIV(5)  # keyword-only


def test_constants_match_ogb_master_table():
    import pandas as pd
    import ogb.graphproppred

    master = pd.read_csv(Path(ogb.graphproppred.__file__).parent / "master.csv", index_col=0, keep_default_na=False)[
        "ogbg-molhiv"
    ]
    assert int(master["version"]) == molecules.DATASET_VERSION
    assert master["url"] == molecules.DOWNLOAD_URL
    assert master["split"] == molecules.SPLIT
    assert master["eval metric"] == MolHIV.metric


def test_loader_reads_ogb_format_offline(pristine, tmp_path, no_network):
    data_dir = tmp_path / "data"
    shutil.copytree(pristine[0], data_dir)
    _, smiles, labels, split = pristine
    from ogb.utils import smiles2graph

    dataset, idx = MolHIV().load(data_dir)
    assert not no_network
    assert (data_dir / "ogbg_molhiv" / "processed" / "geometric_data_processed.pt").is_file()
    assert len(dataset) == len(smiles)
    assert {k: v.tolist() for k, v in idx.items()} == split
    for i in (0, 1, 17, len(smiles) - 1):  # the real format, read back by OGB's own reader
        g = smiles2graph(smiles[i])
        assert torch.equal(dataset[i].x, torch.from_numpy(g["node_feat"]))
        assert torch.equal(dataset[i].edge_index, torch.from_numpy(g["edge_index"]))
        assert torch.equal(dataset[i].edge_attr, torch.from_numpy(g["edge_feat"]))
        assert dataset[i].y.tolist() == [[labels[i]]]
    again, _ = MolHIV().load(data_dir)  # second time: from processed/, still offline
    assert len(again) == len(smiles) and not no_network


def test_max_train_and_max_eval_keep_both_classes(data_dir):
    _, idx = MolHIV(max_train=6, max_eval=2).load(data_dir)
    assert [len(idx[k]) for k in ("train", "valid", "test")] == [6, 2, 2]
    for part in idx.values():
        assert {int(i) % 2 for i in part} == {0, 1}  # even index = has N = label 1
    _, again = MolHIV(max_train=6, max_eval=2).load(data_dir)
    assert all(torch.equal(idx[k], again[k]) for k in idx)


def test_missing_directory_raises_before_ogb_and_downloads_nothing(tmp_path, no_network, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("OGB prompted"))
    bench = MolHIV(**TINY)
    for call in (lambda: bench.check_data(tmp_path), lambda: bench.run(relu_factory, 0, tmp_path, "cpu")):
        with pytest.raises(DatasetMissing) as info:
            call()
        message = str(info.value)
        assert str(tmp_path / "ogbg_molhiv") in message
        assert "hiv.zip" in message and "PygGraphPropPredDataset" in message
    assert isinstance(info.value, FileNotFoundError)
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing downloaded
    assert not no_network


def test_incomplete_directory_names_the_missing_files(pristine, tmp_path, no_network, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("OGB prompted"))
    data_dir = tmp_path / "data"
    shutil.copytree(pristine[0], data_dir)
    root = data_dir / "ogbg_molhiv"
    (root / "raw" / "edge-feat.csv.gz").unlink()
    (root / "split" / "scaffold" / "test.csv.gz").unlink()
    with pytest.raises(DatasetMissing) as info:
        MolHIV().check_data(data_dir)
    assert "edge-feat.csv.gz" in str(info.value) and "test.csv.gz" in str(info.value)

    shutil.rmtree(data_dir)
    shutil.copytree(pristine[0], data_dir)
    (root / "RELEASE_v1.txt").unlink()  # OGB itself would ask on stdin whether to re-download
    with pytest.raises(DatasetMissing, match="RELEASE_v1.txt"):
        MolHIV(**TINY).run(relu_factory, 0, data_dir, "cpu")
    assert not no_network


def test_dataset_class_refuses_to_download(tmp_path, no_network):
    root = tmp_path / "ogbg_molhiv"
    root.mkdir()
    (root / "RELEASE_v1.txt").write_text("")
    with pytest.raises(DatasetMissing, match="edge.csv.gz"):
        molecules._dataset_class()("ogbg-molhiv", root=str(tmp_path))
    assert not no_network


def test_imports_need_no_optional_package_and_start_no_version_check(tmp_path):
    """In a fresh interpreter: the module imports and checks data without ogb / torch_geometric /
    rdkit; then ``import_ogb`` imports ogb without arming its PyPI check (no thread, no socket)."""
    code = (
        "import socket, sys, threading, types\n"
        "import packaging.version\n"
        "# setuptools >= 81 has no pkg_resources, which alone would make outdated's check fail\n"
        "# before any request; provide it, as older environments do\n"
        "sys.modules['pkg_resources'] = types.SimpleNamespace(parse_version=packaging.version.parse)\n"
        "attempts = []\n"
        "def refuse(*a, **k):\n"
        "    attempts.append(a); raise OSError('no network')\n"
        "socket.socket.connect = refuse; socket.getaddrinfo = refuse\n"
        "blocked = ('ogb', 'torch_geometric', 'rdkit', 'sklearn', 'pandas', 'outdated')\n"
        "for name in blocked:\n"
        "    sys.modules[name] = None\n"
        "from actmine.transfer.molecules import MolHIV, import_ogb\n"
        "from actmine.transfer.base import DatasetMissing\n"
        "try:\n"
        f"    MolHIV().check_data({str(tmp_path)!r})\n"
        "except DatasetMissing:\n"
        "    print('missing ok')\n"
        "for name in blocked:\n"
        "    del sys.modules[name]\n"
        "import_ogb()\n"
        "import ogb.version\n"
        "assert ogb.version.check_outdated is None, 'version check armed'\n"
        "assert sys.modules.get('outdated', 'absent') is not None, 'outdated left blocked'\n"
        "for t in threading.enumerate():\n"
        "    if t is not threading.main_thread(): t.join(10)\n"
        "print('attempts', len(attempts))\n"
        "import outdated  # positive control: this one's own check does try PyPI\n"
        "for t in threading.enumerate():\n"
        "    if t is not threading.main_thread(): t.join(10)\n"
        "print('control', len(attempts) > 0)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OUTDATED_IGNORE"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "missing ok" in out.stdout and "attempts 0" in out.stdout
    assert "control True" in out.stdout  # the harness does see a version check when one runs


# ------------------------------------------------------------------------------------------
# model
# ------------------------------------------------------------------------------------------


class Counting(nn.Module):
    """A distinct activation: tanh, counting its calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.tanh(x)


def test_every_nonlinearity_is_the_plugged_activation(data_dir, monkeypatch):
    made: list[Counting] = []

    def factory():
        made.append(Counting())
        return made[-1]

    layers = 3
    bench = MolHIV(hidden=8, layers=layers)
    model = bench.build_model(factory)
    assert len(made) == 3 * layers - 1  # per layer: message + MLP; between layers: layers - 1
    assert {id(m) for m in model.modules() if isinstance(m, Counting)} == {id(m) for m in made}
    builtin = tuple(
        getattr(nn, n)
        for n in (
            "ReLU",
            "LeakyReLU",
            "ELU",
            "SELU",
            "GELU",
            "SiLU",
            "Mish",
            "Softplus",
            "Tanh",
            "Sigmoid",
            "PReLU",
            "ReLU6",
            "Hardtanh",
            "Hardswish",
            "Hardsigmoid",
            "CELU",
            "GLU",
            "Softsign",
        )
    )
    assert not [m for m in model.modules() if isinstance(m, builtin)]

    def forbidden(*a, **k):
        raise AssertionError("a built-in nonlinearity was called")

    for target in ("relu", "gelu", "elu", "leaky_relu", "silu", "sigmoid", "tanh"):
        if target != "tanh":  # Counting itself uses torch.tanh
            monkeypatch.setattr(torch, target, forbidden, raising=False)
        monkeypatch.setattr(torch.nn.functional, target, forbidden)
    monkeypatch.setattr(torch.Tensor, "relu", forbidden)
    dataset, idx = bench.load(data_dir)
    from torch_geometric.loader import DataLoader

    batch = next(iter(DataLoader(dataset[idx["train"]], batch_size=8)))
    model.train()
    out = model(batch)
    assert out.shape == (8, 1) and torch.isfinite(out).all()
    assert all(m.calls == 1 for m in made)


def test_model_matches_ogb_reference_shapes():
    model = MolHIV().build_model(relu_factory)  # the real size: hidden 300, 5 layers
    assert len(model.convs) == 5 and model.head.in_features == 300
    assert model.convs[0].mlp[0].out_features == 600
    n_params = sum(p.numel() for p in model.parameters())
    assert 1_800_000 < n_params < 1_900_000  # OGB's GIN for molhiv: about 1.88 M parameters


# ------------------------------------------------------------------------------------------
# end to end
# ------------------------------------------------------------------------------------------


def test_run_returns_official_rocauc_matching_sklearn(data_dir, no_network):
    from sklearn.metrics import roc_auc_score

    bench = MolHIV(**{**TINY, "epochs": 8})
    fit = bench.fit(relu_factory, seed=0, data_dir=data_dir, device="cpu")
    score = fit.score
    assert isinstance(score, BenchmarkScore) and score.metric == "rocauc"
    assert 0.0 <= score.score <= 1.0
    assert score.score == pytest.approx(roc_auc_score(fit.test_true[:, 0], fit.test_pred[:, 0]), abs=1e-12)
    assert score.details["valid_rocauc"] == pytest.approx(
        roc_auc_score(fit.valid_true[:, 0], fit.valid_pred[:, 0]), abs=1e-12
    )
    d = score.details
    assert d["epochs"] == 8 and 1 <= d["best_epoch"] <= 8
    assert d["valid_rocauc"] == max(d["valid_curve"])  # model selection on validation
    assert score.score == d["test_curve"][d["best_epoch"] - 1]
    assert d["graphs"] == {"train": 32, "valid": 8, "test": 8}
    assert d["train_loss"][-1] < d["train_loss"][0]  # it learns the nitrogen rule
    assert d["valid_rocauc"] >= 0.75
    import json

    json.dumps(d)  # JSON-serialisable details
    assert not no_network


def test_same_seed_same_score(data_dir):
    bench = MolHIV(**{**TINY, "dropout": 0.5})
    a = bench.run(relu_factory, 3, data_dir, "cpu")
    b = bench.run(relu_factory, 3, data_dir, "cpu")
    c = bench.run(relu_factory, 4, data_dir, "cpu")
    strip = lambda s: {k: v for k, v in s.details.items() if k != "seconds"}  # noqa: E731
    assert a.score == b.score and strip(a) == strip(b)
    assert a.details["train_loss"] != c.details["train_loss"]  # the seed matters
    # the global RNG is left as it was
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    bench.run(relu_factory, 5, data_dir, "cpu")
    assert torch.equal(torch.rand(3), expected)


def test_divergence_is_an_error_not_a_score(data_dir):
    class Explode(nn.Module):
        def forward(self, x):
            return x * float("nan")

    score = MolHIV(**TINY).run(Explode, 0, data_dir, "cpu")
    assert np.isnan(score.score)  # the runner's `non_finite` failure, never a number to average
    assert score.details["diverged_epoch"] == 1 and score.details["best_epoch"] is None
