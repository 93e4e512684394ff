"""ogbg-molhiv: molecular property prediction with a GIN, scored by the official OGB evaluator.

The benchmark of the Open Graph Benchmark (Hu et al. 2020): 41,127 molecules from the MoleculeNet
HIV screen, one binary task (inhibits HIV replication or not), the official scaffold split and
ROC-AUC as the metric.  The model is the GIN of OGB's example (``examples/graphproppred/mol``):
``AtomEncoder`` → ``layers`` × [GINConv with bond features → BatchNorm → activation (not after
the last layer) → dropout] → mean pooling → linear head, trained with Adam on BCE-with-logits
(unlabelled entries ignored).  Model selection is on the validation ROC-AUC: the score is the test
ROC-AUC at the best validation epoch, as on OGB's leaderboard (OGB's example also scores the
training split every epoch; that is skipped here, it only costs time).

The activation under test replaces every nonlinearity of the architecture: the message function of
each GINConv (``act(x_j + bond_embedding)``), the hidden layer of each GINConv's MLP, and the one
between layers — ``3 * layers - 1`` calls of ``make_activation`` in all.

Data: ``DATA_DIR/ogbg_molhiv`` in OGB's own layout (``raw/*.csv.gz``, ``split/scaffold/*.csv.gz``,
``RELEASE_v1.txt``, ``mapping/``), read by the real ``ogb.graphproppred.PygGraphPropPredDataset``.
Nothing here ever downloads: a missing or incomplete directory is a :class:`DatasetMissing` raised
before OGB's dataset class is constructed, and the dataset class used here refuses to download even
if asked.  OGB checks PyPI for a newer version of itself (via the ``outdated`` package, in a
background thread, on ``import ogb``); :func:`import_ogb` imports OGB with that check switched off.

``ogb``, ``torch_geometric`` (pure Python; no torch_scatter / torch_sparse needed) and, to build
the raw files from SMILES, ``rdkit`` are imported only when used, so importing this module never
fails without them.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .base import ActivationFactory, BenchmarkScore, DatasetMissing, register_benchmark

__all__ = ["MolHIV", "MolHIVFit", "import_ogb", "rocauc"]

DATASET_NAME = "ogbg-molhiv"
DATASET_DIR = "ogbg_molhiv"  # OGB's folder name: '_'.join(name.split('-'))
DATASET_VERSION = 1  # ogb/graphproppred/master.csv, column ogbg-molhiv, row `version`
DOWNLOAD_URL = "http://snap.stanford.edu/ogb/data/graphproppred/csv_mol_download/hiv.zip"
RAW_FILES = (
    "edge.csv.gz",
    "edge-feat.csv.gz",
    "graph-label.csv.gz",
    "node-feat.csv.gz",
    "num-edge-list.csv.gz",
    "num-node-list.csv.gz",
)
SPLIT = "scaffold"
SPLIT_FILES = ("train.csv.gz", "valid.csv.gz", "test.csv.gz")


# --------------------------------------------------------------------------------------------
# OGB without the network
# --------------------------------------------------------------------------------------------


def import_ogb():
    """Import and return the ``ogb`` package with its PyPI version check switched off.

    ``ogb/version.py`` does ``from outdated import check_outdated`` and, when that works, starts a
    thread that asks PyPI for the latest ``ogb`` (``OUTDATED_IGNORE=1``, which ogb sets itself,
    only silences the warning, not the request); importing ``outdated`` also starts its own
    check of ``outdated``.  While ogb is first imported, ``sys.modules['outdated']`` is ``None``,
    so that import fails, ogb falls back to ``check_outdated = None`` and starts no thread.  The
    previous entry (a real ``outdated`` module or none) is put back afterwards.
    """
    os.environ.setdefault("OUTDATED_IGNORE", "1")
    if "ogb.version" not in sys.modules:
        missing = object()
        saved = sys.modules.get("outdated", missing)
        sys.modules["outdated"] = None  # type: ignore[assignment]  # makes `import outdated` fail
        try:
            importlib.import_module("ogb.version")
        finally:
            if sys.modules.get("outdated", missing) is None:
                del sys.modules["outdated"]
            if saved is not missing:
                sys.modules["outdated"] = saved  # type: ignore[assignment]
    return importlib.import_module("ogb")


def _require(what: str):
    try:
        if what == "ogb" or what.startswith("ogb."):
            import_ogb()  # first, so that the version check never starts
        if what == "ogb":
            importlib.import_module("ogb.graphproppred")
            return importlib.import_module("ogb.graphproppred.dataset_pyg")
        return importlib.import_module(what)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"the molhiv benchmark needs `ogb` and `torch_geometric` ({exc}); install them with "
            "`pip install ogb torch-geometric` (rdkit too, to build graphs from SMILES)"
        ) from exc


_EVALUATOR = None


def rocauc(y_true, y_pred) -> float:
    """ROC-AUC of ``y_pred`` (scores or logits, shape ``(n, 1)``) by the official OGB evaluator."""
    global _EVALUATOR
    if _EVALUATOR is None:
        _EVALUATOR = _require("ogb.graphproppred").Evaluator(DATASET_NAME)
    return float(_EVALUATOR.eval({"y_true": y_true, "y_pred": y_pred})["rocauc"])


_DATASET_CLASS = None


def _dataset_class():
    """``PygGraphPropPredDataset`` with ``download`` replaced by an error (defence in depth)."""
    global _DATASET_CLASS
    if _DATASET_CLASS is None:
        base = _require("ogb").PygGraphPropPredDataset

        class _LocalPygGraphPropPredDataset(base):
            def download(self):  # called by torch_geometric only when raw files are missing
                raise DatasetMissing(
                    _missing_message(
                        Path(self.original_root), Path(self.root), [f"{self.raw_dir}/{f}" for f in self.raw_file_names]
                    )
                )

        _DATASET_CLASS = _LocalPygGraphPropPredDataset
    return _DATASET_CLASS


def _pyg_safe_globals():
    """Allow-list for ``torch.load(weights_only=True)`` of OGB's processed file.

    ogb 1.3.6 reads ``processed/geometric_data_processed.pt`` with a plain ``torch.load``; since
    torch 2.6 that means ``weights_only=True``, which refuses PyG's storage classes that PyG itself
    does not allow-list.  Allowing these three keeps the safe loader (no arbitrary unpickling).
    """
    if not hasattr(torch.serialization, "safe_globals"):  # torch < 2.5: weights_only=False default
        return contextlib.nullcontext()
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage

    return torch.serialization.safe_globals([DataEdgeAttr, DataTensorAttr, GlobalStorage])


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """An advisory lock (``flock``) held while OGB processes or reads the dataset; a no-op where
    ``fcntl`` is missing or the folder is read-only."""
    try:
        import fcntl

        handle = open(lock_path, "a")
    except (ImportError, OSError):
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _missing_message(data_dir: Path, root: Path, missing: list[str]) -> str:
    shown = ", ".join(missing[:6]) + (f" (+{len(missing) - 6} more)" if len(missing) > 6 else "")
    what = f"{root} does not exist" if missing == [str(root)] else f"{root} is incomplete (missing: {shown})"
    return (
        f"ogbg-molhiv not found: {what}. Nothing is downloaded here; obtain it on "
        "a machine with network access, either with\n"
        f'  python -c "from ogb.graphproppred import PygGraphPropPredDataset; '
        f"PygGraphPropPredDataset('ogbg-molhiv', root='{data_dir}')\"\n"
        f"or by downloading {DOWNLOAD_URL}, unzipping it in {data_dir} and renaming the folder "
        f"'hiv' to '{DATASET_DIR}'; then copy {data_dir / DATASET_DIR} to this machine."
    )


def dataset_root(data_dir: Path | str) -> Path:
    """The folder OGB will read: ``ogbg_molhiv_pyg`` if present (OGB prefers it), else ``ogbg_molhiv``."""
    data_dir = Path(data_dir)
    pyg = data_dir / f"{DATASET_DIR}_pyg"
    return pyg if pyg.is_dir() else data_dir / DATASET_DIR


# --------------------------------------------------------------------------------------------
# The model (OGB's examples/graphproppred/mol/conv.py, GIN variant, JK = last, no virtual node)
# --------------------------------------------------------------------------------------------

_GIN_CONV_CLASS = None


def _gin_conv_class():
    global _GIN_CONV_CLASS
    if _GIN_CONV_CLASS is not None:
        return _GIN_CONV_CLASS
    MessagePassing = _require("torch_geometric.nn").MessagePassing
    BondEncoder = _require("ogb.graphproppred.mol_encoder").BondEncoder

    class GINConv(MessagePassing):
        """GIN layer with bond features: ``MLP((1 + eps) x_i + Σ_j act(x_j + bond(e_ij)))``."""

        def __init__(self, emb_dim: int, make_activation: ActivationFactory):
            super().__init__(aggr="add")
            self.mlp = nn.Sequential(
                nn.Linear(emb_dim, 2 * emb_dim),
                nn.BatchNorm1d(2 * emb_dim),
                make_activation(),
                nn.Linear(2 * emb_dim, emb_dim),
            )
            self.eps = nn.Parameter(torch.zeros(1))
            self.bond_encoder = BondEncoder(emb_dim=emb_dim)
            self.message_activation = make_activation()

        def forward(self, x, edge_index, edge_attr):
            edge_embedding = self.bond_encoder(edge_attr)
            return self.mlp((1 + self.eps) * x + self.propagate(edge_index, x=x, edge_attr=edge_embedding))

        def message(self, x_j, edge_attr):
            return self.message_activation(x_j + edge_attr)

        def update(self, aggr_out):
            return aggr_out

    _GIN_CONV_CLASS = GINConv
    return GINConv


class GIN(nn.Module):
    """OGB's GIN for molecules: node embeddings by ``layers`` GINConvs, mean pooling, linear head."""

    def __init__(
        self,
        make_activation: ActivationFactory,
        hidden: int = 300,
        layers: int = 5,
        dropout: float = 0.5,
        num_tasks: int = 1,
    ):
        super().__init__()
        if layers < 1:
            raise ValueError("layers must be ≥ 1")
        AtomEncoder = _require("ogb.graphproppred.mol_encoder").AtomEncoder
        GINConv = _gin_conv_class()
        self.layers = layers
        self.dropout = dropout
        self.atom_encoder = AtomEncoder(hidden)
        self.convs = nn.ModuleList(GINConv(hidden, make_activation) for _ in range(layers))
        self.batch_norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(layers))
        # activation between layers: after every layer but the last
        self.activations = nn.ModuleList(make_activation() for _ in range(layers - 1))
        self.head = nn.Linear(hidden, num_tasks)
        self._pool = _require("torch_geometric.nn").global_mean_pool

    def forward(self, batch):
        h = self.atom_encoder(batch.x)
        for layer in range(self.layers):
            h = self.batch_norms[layer](self.convs[layer](h, batch.edge_index, batch.edge_attr))
            if layer < self.layers - 1:
                h = self.activations[layer](h)
            h = nn.functional.dropout(h, self.dropout, training=self.training)
        return self.head(self._pool(h, batch.batch))


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


@dataclass
class MolHIVFit:
    """Everything one training run produced: the score plus the predictions behind it."""

    score: BenchmarkScore
    valid_true: np.ndarray
    valid_pred: np.ndarray  # logits of the best-validation model
    test_true: np.ndarray
    test_pred: np.ndarray
    model: nn.Module | None = field(default=None, repr=False)  # weights of the best epoch


def _stratified_subset(idx: torch.Tensor, labels: np.ndarray, limit: int | None) -> torch.Tensor:
    """At most ``limit`` of ``idx``, the same for every seed, keeping both classes when present."""
    if limit is None or limit >= len(idx):
        return idx
    rng = np.random.default_rng(0)
    idx_np = idx.numpy()
    y = labels[idx_np]
    pos, neg = idx_np[y == 1], idx_np[y == 0]
    n_pos = int(round(limit * len(pos) / max(len(idx_np), 1)))
    n_pos = min(len(pos), max(n_pos, 1 if len(pos) and limit > 1 else 0))
    if len(neg) and n_pos >= limit:
        n_pos = limit - 1
    n_neg = min(len(neg), limit - n_pos)
    chosen = np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)])
    return torch.from_numpy(np.sort(chosen)).long()


def _unscored_best() -> dict[str, Any]:
    """The best-epoch record of a fit that diverged before any epoch was scored: a non-finite
    score, which the runner reports as a failure (never a number to average)."""
    nan, empty = float("nan"), np.empty((0, 1), dtype=np.float32)
    return {
        "epoch": None,
        "valid_rocauc": nan,
        "test_rocauc": nan,
        "valid": (empty, empty),
        "test": (empty, empty),
        "state": None,
    }


@register_benchmark
class MolHIV:
    """ogbg-molhiv (scaffold split, ROC-AUC) with OGB's GIN; every nonlinearity is the plugged one.

    Args:
        epochs: training epochs (OGB's example trains 100; the default halves the cost, and
            the score is still taken at the best validation epoch).
        batch_size: graphs per training minibatch (OGB: 32).
        hidden: embedding width (OGB: 300).
        layers: GIN layers (OGB: 5).
        dropout: dropout after each layer (OGB: 0.5).
        lr: Adam learning rate (OGB: 1e-3).
        eval_batch_size: graphs per minibatch when predicting.
        max_train, max_eval: keep at most this many graphs of the training split / of each of the
            validation and test splits (a fixed stratified subset, the same for every seed and
            activation), for quick runs; ``None`` uses the full official split.
    """

    name = "molhiv"
    metric = "rocauc"

    def __init__(
        self,
        *,
        epochs: int = 50,
        batch_size: int = 32,
        hidden: int = 300,
        layers: int = 5,
        dropout: float = 0.5,
        lr: float = 1e-3,
        eval_batch_size: int = 256,
        max_train: int | None = None,
        max_eval: int | None = None,
    ):
        for key, value in (
            ("epochs", epochs),
            ("batch_size", batch_size),
            ("hidden", hidden),
            ("layers", layers),
            ("eval_batch_size", eval_batch_size),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        for key, value in (("max_train", max_train), ("max_eval", max_eval)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 2):
                raise ValueError(f"{key} must be None or an integer ≥ 2, got {value!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not float(lr) > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        self.epochs = epochs
        self.batch_size = batch_size
        self.hidden = hidden
        self.layers = layers
        self.dropout = float(dropout)
        self.lr = float(lr)
        self.eval_batch_size = eval_batch_size
        self.max_train = max_train
        self.max_eval = max_eval

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"MolHIV({opts})"

    # -- data ------------------------------------------------------------------------------

    def check_data(self, data_dir: Path | str) -> None:
        """Raise :class:`DatasetMissing` unless OGB can read ogbg-molhiv locally, without asking."""
        data_dir = Path(data_dir)
        root = dataset_root(data_dir)
        if not root.is_dir():
            raise DatasetMissing(_missing_message(data_dir, root, [str(root)]))
        missing = [str(root / "raw" / f) for f in RAW_FILES if not (root / "raw" / f).is_file()]
        split = root / "split" / SPLIT
        if not (split / "split_dict.pt").is_file():
            missing += [str(split / f) for f in SPLIT_FILES if not (split / f).is_file()]
        if missing:
            raise DatasetMissing(_missing_message(data_dir, root, missing))
        release = root / f"RELEASE_v{DATASET_VERSION}.txt"
        if not release.is_file():
            # Without it OGB asks on stdin whether to delete the folder and download it again.
            raise DatasetMissing(
                f"{release} is missing: {root} is not OGB's current release (v{DATASET_VERSION}) of "
                f"ogbg-molhiv, and OGB would offer to delete and re-download it. Replace {root} with a "
                f"fresh copy ({DOWNLOAD_URL}, unzipped and renamed to '{DATASET_DIR}'); if it is the "
                f"current release, create the empty file {release}."
            )

    def load(self, data_dir: Path | str):
        """The OGB dataset and its official split (limited by ``max_train`` / ``max_eval``)."""
        data_dir = Path(data_dir)
        self.check_data(data_dir)  # before OGB's class is built: it would prompt or download
        cls = _dataset_class()
        # The first load turns raw/ into processed/; parallel jobs wait for it instead of racing.
        with (
            _exclusive(dataset_root(data_dir) / ".actmine-process.lock"),
            _pyg_safe_globals(),
            warnings.catch_warnings(),
        ):
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            dataset = cls(DATASET_NAME, root=str(data_dir))
        split = dataset.get_idx_split()
        labels = dataset.y.view(-1).numpy() if self.max_train or self.max_eval else None
        limits = {"train": self.max_train, "valid": self.max_eval, "test": self.max_eval}
        split = {k: _stratified_subset(torch.as_tensor(v).long(), labels, limits[k]) for k, v in split.items()}
        return dataset, split

    # -- model -----------------------------------------------------------------------------

    def build_model(self, make_activation: ActivationFactory) -> GIN:
        return GIN(make_activation, hidden=self.hidden, layers=self.layers, dropout=self.dropout)

    # -- training --------------------------------------------------------------------------

    @staticmethod
    @torch.no_grad()
    def predict(model: nn.Module, loader, device: str) -> tuple[np.ndarray, np.ndarray]:
        """``(y_true, y_pred)`` over ``loader`` as ``(n, 1)`` arrays; ``y_pred`` are logits."""
        model.eval()
        trues, preds = [], []
        for batch in loader:
            batch = batch.to(device)
            preds.append(model(batch).detach().float().cpu())
            trues.append(batch.y.view(preds[-1].shape).detach().cpu())
        return torch.cat(trues).numpy(), torch.cat(preds).numpy()

    def fit(
        self,
        make_activation: ActivationFactory,
        seed: int,
        data_dir: Path | str,
        device: str = "cpu",
        keep_model: bool = False,
    ) -> MolHIVFit:
        """Train one GIN from scratch; the score and the predictions of the best validation epoch.

        After every epoch the model predicts the validation and test splits; the result is the test
        ROC-AUC of the epoch with the highest validation ROC-AUC (the first, on ties).  A non-finite
        training loss or prediction stops training: the best epoch before it still counts (early
        stopping), and when there is none the score is NaN (``details["diverged_epoch"]`` says when),
        which the runner reports as a failure.
        """
        started = time.perf_counter()
        dataset, split = self.load(data_dir)
        loader_cls = _require("torch_geometric.loader").DataLoader
        device = str(device)
        dev = torch.device(device)
        fork_devices = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            shuffle = torch.Generator().manual_seed(seed)
            train_loader = loader_cls(
                dataset[split["train"]], batch_size=self.batch_size, shuffle=True, generator=shuffle
            )
            valid_loader = loader_cls(dataset[split["valid"]], batch_size=self.eval_batch_size, shuffle=False)
            test_loader = loader_cls(dataset[split["test"]], batch_size=self.eval_batch_size, shuffle=False)

            model = self.build_model(make_activation).to(dev)
            best, history, diverged_epoch = self._train(model, train_loader, valid_loader, test_loader, dev, keep_model)

        if best is None:
            best = _unscored_best()
        if keep_model and best["state"] is not None:
            model.load_state_dict(best["state"])
        details = self._details(best, history, diverged_epoch, split, model, started)
        score = BenchmarkScore(score=float(best["test_rocauc"]), metric=self.metric, details=details)
        return MolHIVFit(
            score=score,
            valid_true=best["valid"][0],
            valid_pred=best["valid"][1],
            test_true=best["test"][0],
            test_pred=best["test"][1],
            model=model if keep_model else None,
        )

    def _train(
        self, model: nn.Module, train_loader, valid_loader, test_loader, dev: torch.device, keep_model: bool
    ) -> tuple[dict[str, Any] | None, list[dict[str, float]], int | None]:
        """The epochs, each followed by predictions on the validation and test splits; keeps the
        epoch with the best validation ROC-AUC (the first, on ties). A non-finite loss or prediction
        stops training. ``(best epoch's record or None, per-epoch history, diverged epoch or None)``."""
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        criterion = nn.BCEWithLogitsLoss()

        best: dict[str, Any] | None = None
        history: list[dict[str, float]] = []
        diverged_epoch = None
        for epoch in range(1, self.epochs + 1):
            train_loss = self._train_epoch(model, train_loader, optimizer, criterion, dev)
            if train_loss is None:
                diverged_epoch = epoch
                break
            valid_true, valid_pred = self.predict(model, valid_loader, dev)
            test_true, test_pred = self.predict(model, test_loader, dev)
            if not (np.isfinite(valid_pred).all() and np.isfinite(test_pred).all()):
                diverged_epoch = epoch
                break
            valid_auc, test_auc = rocauc(valid_true, valid_pred), rocauc(test_true, test_pred)
            history.append({"train_loss": train_loss, "valid_rocauc": valid_auc, "test_rocauc": test_auc})
            if best is None or valid_auc > best["valid_rocauc"]:
                best = {
                    "epoch": epoch,
                    "valid_rocauc": valid_auc,
                    "test_rocauc": test_auc,
                    "valid": (valid_true, valid_pred),
                    "test": (test_true, test_pred),
                    "state": ({k: v.detach().clone() for k, v in model.state_dict().items()} if keep_model else None),
                }
        return best, history, diverged_epoch

    @staticmethod
    def _train_epoch(
        model: nn.Module, train_loader, optimizer: torch.optim.Optimizer, criterion: nn.Module, dev: torch.device
    ) -> float | None:
        """One epoch over the training split; the mean loss per labelled graph, or None when a
        loss was not finite (the epoch stops there, before that update)."""
        model.train()
        total, count = 0.0, 0
        for batch in train_loader:
            batch = batch.to(dev)
            # as OGB's example: BatchNorm needs more than one node / graph
            if batch.x.shape[0] == 1 or batch.num_graphs == 1:
                continue
            pred = model(batch)
            y = batch.y.view(pred.shape).float()
            labelled = y == y  # NaN labels are unlabelled
            loss = criterion(pred[labelled], y[labelled])
            value = float(loss.detach())
            if not math.isfinite(value):
                return None
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n = int(labelled.sum())
            total, count = total + value * n, count + n
        return total / max(count, 1)

    def _details(
        self,
        best: dict[str, Any],
        history: list[dict[str, float]],
        diverged_epoch: int | None,
        split: dict[str, Any],
        model: nn.Module,
        started: float,
    ) -> dict[str, Any]:
        """``BenchmarkScore.details`` of a fit: the best epoch's scores and the curves."""
        return {
            "valid_rocauc": best["valid_rocauc"],
            "test_rocauc": best["test_rocauc"],
            "best_epoch": best["epoch"],
            "epochs": len(history),
            "epochs_planned": self.epochs,
            "diverged_epoch": diverged_epoch,
            "final_train_loss": history[-1]["train_loss"] if history else None,
            "train_loss": [h["train_loss"] for h in history],
            "valid_curve": [h["valid_rocauc"] for h in history],
            "test_curve": [h["test_rocauc"] for h in history],
            "graphs": {k: int(len(v)) for k, v in split.items()},
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "split": SPLIT,
            "seconds": time.perf_counter() - started,
        }

    def run(
        self, make_activation: ActivationFactory, seed: int, data_dir: Path | str, device: str = "cpu"
    ) -> BenchmarkScore:
        """Test ROC-AUC (official evaluator) at the epoch with the best validation ROC-AUC."""
        return self.fit(make_activation, seed, data_dir, device).score
