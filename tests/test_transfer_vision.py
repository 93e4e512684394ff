"""Vision transfer benchmarks: digits trains, CIFAR-10 and ImageNet readers run end to end on tiny
generated datasets in the real on-disk formats, the activation is plugged into every
nonlinearity, the networks have their reference sizes, and the ImageNet path runs data-parallel
(two CPU processes, gloo on the loopback interface)."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from actmine import activations
from actmine.transfer import base
from actmine.transfer.base import BenchmarkScore, DatasetMissing
from actmine.transfer.vision import (
    Cifar10,
    CifarResNet,
    Digits,
    DigitsCNN,
    ImageFolder,
    ImageNet,
    ResNet,
    center_crop,
    cifar_augment,
    load_cifar10,
    random_resized_crop,
    resnet20,
    resnet50,
)

TINY_IMAGENET = dict(epochs=1, batch_size=6, image_size=32, layers=(1, 1, 1, 1), width=8, workers=0, warmup_epochs=0)


class Counting(nn.Module):
    """An activation (softsign) that counts how often it is called."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x / (1 + x.abs())


# -- fixtures: tiny datasets in the real formats -------------------------------------------------

# Ten well-separated colours: class k is a noisy image of colour k, learnable by a tiny network.
COLOURS = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [0, 0, 128],
    ]
)


def _coloured_images(labels: np.ndarray, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    base_colour = COLOURS[labels][:, :, None, None]  # (N, 3, 1, 1)
    noise = rng.normal(0, 20, size=(len(labels), 3, size, size))
    return np.clip(base_colour + noise, 0, 255).astype(np.uint8)


def _write_cifar_batch(path: Path, x: np.ndarray, y: np.ndarray, python2_names: bool) -> None:
    batch = {
        b"batch_label": path.name.encode(),
        b"labels": [int(v) for v in y],
        b"data": x.reshape(len(x), 3072),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(x))],
    }
    raw = pickle.dumps(batch, protocol=2)
    if python2_names:
        # The official files were written by Python 2 with numpy 1: arrays refer to
        # numpy.core.multiarray (numpy 2 writes numpy._core).
        raw = raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    path.write_bytes(raw)


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory) -> Path:
    """DATA_DIR/cifar-10-batches-py with 5 x 60 training and 100 test images."""
    data_dir = tmp_path_factory.mktemp("cifar")
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        y = rng.integers(0, 10, 60)
        _write_cifar_batch(folder / f"data_batch_{i}", _coloured_images(y, rng), y, True)
    y = rng.integers(0, 10, 100)
    _write_cifar_batch(folder / "test_batch", _coloured_images(y, rng), y, False)
    (folder / "batches.meta").write_bytes(
        pickle.dumps({b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072}, protocol=2)
    )
    return data_dir


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory) -> Path:
    """DATA_DIR/imagenet/{train,val}/<wnid>/*.JPEG: 3 classes x 6 train and 2 val images, 40x40."""
    from PIL import Image

    data_dir = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 2)):
        for k, wnid in enumerate(["n01440764", "n01443537", "n01484850"]):
            folder = data_dir / "imagenet" / split / wnid
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = _coloured_images(np.array([k]), rng, size=40)[0].transpose(1, 2, 0)
                image = Image.fromarray(pixels)
                if split == "train" and i == 0:
                    image = image.convert("L")  # ImageNet has greyscale JPEGs too
                image.save(folder / f"{wnid}_{i}.JPEG", quality=90)
            (folder / "notes.txt").write_text("not an image")
    return data_dir


# -- registration and the protocol ---------------------------------------------------------------


def test_benchmarks_are_registered_with_name_and_metric():
    # base._BENCHMARKS directly: list_benchmarks() also imports the other rooms' benchmarks.
    assert base._BENCHMARKS["digits"] is Digits and Digits.metric == "accuracy"
    assert base._BENCHMARKS["cifar10"] is Cifar10 and Cifar10.metric == "accuracy"
    assert base._BENCHMARKS["imagenet"] is ImageNet and ImageNet.metric == "top1"
    with pytest.raises(ValueError, match="6n"):
        Cifar10(depth=21)


# -- digits --------------------------------------------------------------------------------------


def test_digits_relu_trains_to_high_accuracy(tmp_path):
    result = Digits().run(nn.ReLU, seed=0, data_dir=tmp_path, device="cpu")
    assert isinstance(result, BenchmarkScore) and result.metric == "accuracy"
    assert result.score > 0.9
    assert result.details["n_train"] == 1347 and result.details["n_test"] == 450
    assert result.details["train_loss"] < 0.3 and not result.details["diverged"]
    json.dumps(result.details)


def test_digits_accepts_registry_and_lambda_activations():
    gelu = Digits(epochs=3).run(lambda: activations.get("gelu"), 0, None, "cpu")
    swish = Digits(epochs=3).run(lambda: activations.get(lambda x: x * torch.sigmoid(x)), 0, None, "cpu")
    assert gelu.score > 0.6 and swish.score > 0.6  # chance is 0.1


def test_digits_is_deterministic_and_leaves_the_callers_rng_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = Digits(epochs=2).run(nn.ReLU, 7, None, "cpu")
    assert torch.equal(torch.get_rng_state(), state)
    b = Digits(epochs=2).run(nn.ReLU, 7, None, "cpu")
    c = Digits(epochs=2).run(nn.ReLU, 8, None, "cpu")
    assert (a.score, a.details["train_loss"]) == (b.score, b.details["train_loss"])
    assert c.details["train_loss"] != a.details["train_loss"]


def test_digits_without_sklearn_is_a_clear_dataset_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DatasetMissing, match="pip install scikit-learn"):
        Digits().check_data(Path("."))


# -- every nonlinearity is the plugged activation ------------------------------------------------


@pytest.mark.parametrize(
    "build, shape, expected",
    [
        (lambda act: DigitsCNN(act), (2, 1, 8, 8), 3),
        (lambda act: resnet20(act), (2, 3, 32, 32), 1 + 9 * 2),
        (lambda act: CifarResNet(act, depth=8), (2, 3, 32, 32), 1 + 3 * 2),
        (lambda act: ResNet(act, layers=(1, 2, 1, 1), width=8), (2, 3, 32, 32), 1 + 5 * 3),
        (lambda act: resnet50(act), (1, 3, 32, 32), 1 + 16 * 3),
    ],
    ids=["digits", "resnet20", "resnet8", "tiny-resnet", "resnet50"],
)
def test_every_nonlinearity_is_the_plugged_activation(build, shape, expected):
    made: list[Counting] = []

    def factory():
        made.append(Counting())
        return made[-1]

    model = build(factory).eval()
    assert len(made) == expected
    assert not any(isinstance(m, (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh)) for m in model.modules())
    with torch.no_grad():
        model(torch.randn(shape))
    assert [m.calls for m in made] == [1] * expected  # each one is used, once per forward


def test_reference_parameter_counts():
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    # He et al. 2016, Table 6: ResNet-20 has 0.27M parameters (option A shortcuts).
    assert count(resnet20(nn.ReLU)) == 269_722
    # torchvision's resnet50: 25,557,032 parameters for 1000 classes.
    assert count(resnet50(nn.ReLU)) == 25_557_032


# -- CIFAR-10 ------------------------------------------------------------------------------------


def test_cifar10_reader(cifar_dir):
    x_tr, y_tr, x_te, y_te = load_cifar10(cifar_dir)
    assert x_tr.shape == (300, 3, 32, 32) and x_tr.dtype == np.uint8
    assert x_te.shape == (100, 3, 32, 32) and y_te.dtype == np.int64
    # Rows are the R, G and B planes in that order: class 0 is red.
    assert x_tr[y_tr == 0][:, 0].mean() > 200 > 50 > x_tr[y_tr == 0][:, 1].mean()
    # The folder itself works as data_dir too.
    assert load_cifar10(cifar_dir / "cifar-10-batches-py")[0].shape == x_tr.shape


def test_cifar10_runs_end_to_end_with_a_tiny_resnet(cifar_dir):
    result = Cifar10(epochs=1, depth=8, batch_size=32, lr=0.05, limit_test=60).run(nn.ReLU, 0, cifar_dir, "cpu")
    assert result.metric == "accuracy" and 0.0 <= result.score <= 1.0
    assert result.score > 0.3  # the colours are learnable in one epoch (chance: 0.1)
    assert result.details["n_train"] == 300 and result.details["n_test"] == 60
    assert result.details["epochs"] == 1 and np.isfinite(result.details["train_loss"])


def test_cifar10_refuses_a_pickle_that_would_run_code(tmp_path, cifar_dir):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for f in (cifar_dir / "cifar-10-batches-py").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_cifar10(tmp_path)


def test_cifar_augment_takes_real_crops_of_the_padded_image():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    out = cifar_augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, cifar_augment(x, torch.Generator().manual_seed(0)))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    seen = set()
    for i in range(len(x)):
        matches = [
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if torch.equal(out[i], (lambda c: c.flip(2) if flip else c)(padded[i, :, dy : dy + 32, dx : dx + 32]))
        ]
        assert matches, f"image {i} is not a (flipped) crop of its padded original"
        seen.update((flip, (dy, dx) == (4, 4)) for dy, dx, flip in matches)
    # Both flips and both centred and shifted crops occur.
    assert {f for f, _ in seen} == {False, True} and {c for _, c in seen} == {False, True}


# -- ImageNet ------------------------------------------------------------------------------------


def test_imagenet_transforms():
    from PIL import Image

    img = Image.new("RGB", (60, 40), (10, 20, 30))
    rng = np.random.default_rng(0)
    assert random_resized_crop(img, 32, rng).size == (32, 32)
    assert center_crop(img, 32).size == (32, 32)
    a = random_resized_crop(
        Image.fromarray(np.arange(2400, dtype=np.uint8).reshape(40, 60)), 16, np.random.default_rng(5)
    )
    b = random_resized_crop(
        Image.fromarray(np.arange(2400, dtype=np.uint8).reshape(40, 60)), 16, np.random.default_rng(5)
    )
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_image_folder_reads_classes_and_images(imagenet_dir):
    train = ImageFolder(imagenet_dir / "imagenet" / "train", train=True, image_size=32)
    assert train.classes == ["n01440764", "n01443537", "n01484850"] and len(train) == 18
    image, label = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8 and label == 0
    val = ImageFolder(imagenet_dir / "imagenet" / "val", train=False, image_size=32, classes=train.classes)
    assert len(val) == 6 and torch.equal(val[5][0], val[5][0])


def test_imagenet_runs_end_to_end_on_a_tiny_tree(imagenet_dir):
    result = ImageNet(**TINY_IMAGENET).run(nn.ReLU, 0, imagenet_dir, "cpu")
    assert result.metric == "top1" and 0.0 <= result.score <= 1.0
    d = result.details
    assert (d["num_classes"], d["n_train"], d["n_val"], d["world_size"]) == (3, 18, 6, 1)
    assert result.score <= d["top5"] <= 1.0  # (top-5 is tested with 7 classes below)
    # data_dir may also be the folder holding train/ and val/; loader workers change nothing.
    again = ImageNet(**{**TINY_IMAGENET, "workers": 2}).run(nn.ReLU, 0, imagenet_dir / "imagenet", "cpu")
    assert (again.score, again.details["train_loss"]) == (result.score, d["train_loss"])


class Zero(nn.Module):
    """An activation that outputs zeros: the network's logits are its classifier's bias for
    every image, whatever it learned."""

    def forward(self, x):
        return x * 0.0


@pytest.fixture(scope="module")
def seven_class_imagenet_dir(tmp_path_factory) -> Path:
    """DATA_DIR/imagenet/{train,val}/<wnid>/*.JPEG: 7 classes x 2 train and 2 val images, 40x40."""
    from PIL import Image

    data_dir = tmp_path_factory.mktemp("imagenet7")
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for k in range(7):
            folder = data_dir / "imagenet" / split / f"n0{k}"
            folder.mkdir(parents=True)
            for i in range(2):
                pixels = _coloured_images(np.array([k]), rng, size=40)[0].transpose(1, 2, 0)
                Image.fromarray(pixels).save(folder / f"n0{k}_{i}.JPEG", quality=90)
    return data_dir


def test_imagenet_top5_counts_the_five_best_classes(seven_class_imagenet_dir):
    # Every image gets the same logits (the classifier's bias), so the same 5 of the 7 classes are
    # its top 5: 5 classes x 2 of the 14 validation images are in it, 1 class x 2 is the top 1.
    result = ImageNet(**TINY_IMAGENET).run(Zero, 0, seven_class_imagenet_dir, "cpu")
    d = result.details
    assert (d["num_classes"], d["n_val"]) == (7, 14)
    assert d["top5"] == pytest.approx(10 / 14) and result.score == pytest.approx(2 / 14)


def test_imagenet_checkpoint_resumes(imagenet_dir, tmp_path):
    options = {**TINY_IMAGENET, "epochs": 2, "checkpoint_dir": tmp_path}
    first = ImageNet(**options).run(nn.ReLU, 0, imagenet_dir, "cpu")
    assert (tmp_path / "imagenet-checkpoint.pt").is_file()
    # Everything is done: the rerun only loads the weights and evaluates them.
    resumed = ImageNet(**options).run(nn.ReLU, 0, imagenet_dir, "cpu")
    assert (resumed.score, resumed.details["train_loss"]) == (first.score, first.details["train_loss"])
    with pytest.raises(ValueError, match="other settings"):  # another seed, same directory
        ImageNet(**options).run(nn.ReLU, 1, imagenet_dir, "cpu")


def test_command_line_prints_the_result_as_json(imagenet_dir, tmp_path, capsys):
    from actmine.transfer.vision import main

    tiny = [
        "--epochs",
        "1",
        "--batch-size",
        "6",
        "--image-size",
        "32",
        "--layers",
        "1,1,1,1",
        "--width",
        "8",
        "--workers",
        "0",
        "--warmup-epochs",
        "0",
        "--device",
        "cpu",
    ]
    assert main(["--activation", "gelu", "--data-dir", str(imagenet_dir), *tiny]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["activation"] == "gelu" and line["metric"] == "top1" and 0 <= line["top1"] <= 1
    assert main(["--activation", "no_such_activation", "--data-dir", str(imagenet_dir), *tiny]) == 2
    assert main(["--data-dir", str(tmp_path), *tiny]) == 2
    assert "image-net.org" in capsys.readouterr().err


# -- missing data --------------------------------------------------------------------------------


def test_dataset_missing_messages_name_the_paths(tmp_path):
    with pytest.raises(DatasetMissing) as err:
        Cifar10().check_data(tmp_path)
    message = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and str(tmp_path) in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    with pytest.raises(DatasetMissing) as err:
        ImageNet().check_data(tmp_path)
    message = str(err.value)
    assert str(tmp_path / "imagenet" / "train") in message and "https://image-net.org/" in message
    assert "valprep.sh" in message
    # A missing dataset is reported before any training starts.
    with pytest.raises(DatasetMissing):
        Cifar10().run(nn.ReLU, 0, tmp_path, "cpu")
    with pytest.raises(FileNotFoundError):  # DatasetMissing is a FileNotFoundError
        ImageNet().run(nn.ReLU, 0, tmp_path, "cpu")


# -- data parallel -------------------------------------------------------------------------------


def _ddp_worker(rank: int, world_size: int, data_dir: str, out_dir: str) -> None:
    """One of two CPU processes: a gloo group over loopback, then the benchmark's DDP path."""
    import psutil
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), GLOO_SOCKET_IFNAME="lo"
    )  # gloo's sockets on the loopback interface only
    # Rendezvous through a file rather than torchrun's TCPStore, which listens on every interface.
    store = dist.FileStore(os.path.join(out_dir, "store"), world_size)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size)
    try:
        result = ImageNet(**TINY_IMAGENET).run(nn.ReLU, 0, Path(data_dir), "cpu")
        listening = [
            c.laddr.ip for c in psutil.Process().net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
        ]
        dist.barrier()
    finally:
        dist.destroy_process_group()
    Path(out_dir, f"rank{rank}.json").write_text(
        json.dumps({"score": result.score, "details": result.details, "listening": listening})
    )


def test_imagenet_data_parallel_on_two_cpu_processes(imagenet_dir, tmp_path):
    # fork: the children start in milliseconds instead of importing torch again (the parent runs
    # torch with one thread, so there is no thread pool to break in the children).
    torch.multiprocessing.start_processes(
        _ddp_worker, args=(2, str(imagenet_dir), str(tmp_path)), nprocs=2, start_method="fork"
    )
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert results[0]["score"] == results[1]["score"]  # all-reduced
    for r in results:
        assert r["details"]["world_size"] == 2 and r["details"]["n_val"] == 6
        assert r["details"]["global_batch"] == 12 and 0.0 <= r["score"] <= 1.0
        assert all(ip in ("127.0.0.1", "::1") for ip in r["listening"]), r["listening"]
