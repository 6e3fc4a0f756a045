"""runners.trial.data: every dataset offline (CIFAR from tiny pickles written here), safe
unpickling, uint8 storage, the CIFAR validation split, streamed image folders, augmentation."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import BaseModel, ValidationError

from runners.spec.data import DataConfig
from runners.spec.train import TrainConfig
from runners.trial.data.load import inspect_dataset, load_splits
from runners.trial.data.splits import augment, iterate_batches, stratified_split
from runners.trial.training import Trainer
from search_space import ArchConfig, build_model
from search_space.errors import ConfigError, from_validation_error
from tests.support.fakedata import write_cifar10, write_image_folder

# ----------------------------------------------------------------------------- config


def test_config_rejects_unknown_key_naming_it():
    with pytest.raises(ConfigError, match=r"data\.val_fration: unknown field"):
        DataConfig.model_validate({"name": "digits", "val_fration": 0.1})


def test_config_rejects_unknown_dataset_listing_allowed():
    with pytest.raises(ConfigError, match=r"data\.name: got 'mnist'; allowed: .*'cifar10'"):
        DataConfig.model_validate({"name": "mnist"})


@pytest.mark.parametrize(
    ("field", "value"),
    [("val_fraction", 1.0), ("val_fraction", 0.0), ("num_classes", 1), ("limit_train", 0)],
)
def test_config_rejects_out_of_range_values(field, value):
    with pytest.raises(ConfigError, match=rf"data\.{field}:"):
        DataConfig.model_validate({"name": "synthetic", field: value})


def test_config_rejects_image_size_for_fixed_size_datasets():
    with pytest.raises(ConfigError, match=r"data\.image_size: digits images are 8x8"):
        DataConfig.model_validate({"name": "digits", "image_size": 16})
    assert DataConfig(name="cifar10", image_size=32).resolved_image_size() == 32


def test_config_nested_in_a_spec_keeps_dotted_locations():
    class Spec(BaseModel):
        data: DataConfig

    with pytest.raises(ValidationError) as info:
        Spec.model_validate({"data": {"name": "digits", "val_fraction": 2, "image_size": 9}})
    message = str(from_validation_error(info.value))
    assert "data.val_fraction: " in message and "data.image_size: digits images" in message


def test_root_defaults_to_env_then_dot_data(monkeypatch, tmp_path):
    monkeypatch.setenv("SELAB_DATA", str(tmp_path))
    assert DataConfig(name="cifar10").root_path() == tmp_path
    monkeypatch.delenv("SELAB_DATA")
    assert DataConfig(name="cifar10").root_path() == Path("data")


# ----------------------------------------------------------------------------- digits


def test_digits_offline_shapes_and_normalisation():
    s = load_splits(DataConfig(name="digits"))
    assert s.num_train + s.num_val == 1797
    assert s.num_val == round(0.2 * 1797)
    assert s.train_x.shape == (s.num_train, 1, 8, 8) and s.val_x.shape == (s.num_val, 1, 8, 8)
    # Held as the raw 0..16 levels in uint8; normalised per batch.
    assert s.train_x.dtype == torch.uint8 and s.train_y.dtype == torch.int64
    assert int(s.train_x.max()) == 16
    assert (s.num_classes, s.in_channels, s.image_size) == (10, 1, 8)
    assert s.classes == [str(i) for i in range(10)]
    assert (s.pad, s.flip) == (1, False)  # mirrored digits are other symbols: no flip
    x = s.normalise(s.train_x)
    assert x.dtype == torch.float32
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3
    torch.testing.assert_close(x, (s.train_x.float() / 16 - s.mean[0]) / s.std[0])
    # stratified: every class's share of val is within one image of 20%
    counts = torch.bincount(s.val_y, minlength=10)
    totals = counts + torch.bincount(s.train_y, minlength=10)
    assert ((counts - 0.2 * totals).abs() <= 1).all()


def test_digits_split_depends_on_split_seed_only():
    a = load_splits(DataConfig(name="digits"))
    b = load_splits(DataConfig(name="digits"))
    c = load_splits(DataConfig(name="digits", split_seed=1))
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.val_x, c.val_x)


def test_limit_train_takes_a_stratified_subset():
    s = load_splits(DataConfig(name="digits", limit_train=100))
    assert s.num_train == 100 and s.num_val == round(0.2 * 1797)  # val untouched
    counts = torch.bincount(s.train_y, minlength=10)
    assert counts.min() >= 9 and counts.max() <= 11


def test_stratified_split_keeps_every_class_in_both_sides():
    labels = np.array([0] * 6 + [1] * 4)
    train, val = stratified_split(labels, 0.5, seed=3)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(10))
    assert sorted(labels[val].tolist()) == [0, 0, 0, 1, 1]


# ----------------------------------------------------------------------------- CIFAR


def _write_pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _fake_images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def test_cifar10_reads_the_standard_pickle_layout(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = []
    for i in range(1, 6):  # 5 batches x 4 images = 20 training images
        batch = {b"data": _fake_images(rng, 4), b"labels": [int(v) for v in rng.integers(0, 10, 4)]}
        _write_pickle(folder / f"data_batch_{i}", batch)
        batches.append(batch)
    test = {b"data": _fake_images(rng, 6), b"labels": [0, 1, 2, 3, 4, 5]}
    _write_pickle(folder / "test_batch", test)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
    names += [b"dog", b"frog", b"horse", b"ship", b"truck"]
    _write_pickle(folder / "batches.meta", {b"label_names": names})

    s = load_splits(DataConfig(name="cifar10", root=str(tmp_path), val_size=5))
    # The validation split is carved from the training batches; the test batch stays apart.
    assert s.train_x.shape == (15, 3, 32, 32) and s.val_x.shape == (5, 3, 32, 32)
    assert s.test_x.shape == (6, 3, 32, 32) and s.train_x.dtype == torch.uint8
    assert s.classes[0] == "airplane" and s.num_classes == 10
    assert (s.pad, s.flip, s.in_channels, s.image_size) == (4, True, 3, 32)
    assert s.test_y.tolist() == [0, 1, 2, 3, 4, 5]
    # rows of 3072 bytes are the R, G, B planes of a 32x32 image; train + val = every
    # training image exactly once, each with its label
    expected = np.concatenate([b[b"data"] for b in batches]).reshape(20, 3, 32, 32)
    labels = [lab for b in batches for lab in b[b"labels"]]
    got = np.concatenate([s.train_x.numpy(), s.val_x.numpy()])
    got_labels = s.train_y.tolist() + s.val_y.tolist()
    rows = {expected[i].tobytes(): labels[i] for i in range(20)}
    assert sorted(x.tobytes() for x in got) == sorted(rows)
    assert all(rows[x.tobytes()] == y for x, y in zip(got, got_labels, strict=True))
    np.testing.assert_array_equal(s.test_x.numpy(), test[b"data"].reshape(6, 3, 32, 32))


def test_cifar_validation_split_is_stratified_and_fixed(tmp_path):
    write_cifar10(tmp_path, per_batch=200)
    cfg = DataConfig(name="cifar10", root=str(tmp_path), val_size=100)
    a, b = load_splits(cfg), load_splits(cfg)
    assert (a.num_train, a.num_val, a.test_y.shape[0]) == (900, 100, 200)
    assert torch.equal(a.val_x, b.val_x)  # split_seed, not the trial seed, decides
    c = load_splits(DataConfig(name="cifar10", root=str(tmp_path), val_size=100, split_seed=1))
    assert not torch.equal(a.val_x, c.val_x)
    share = torch.bincount(a.val_y, minlength=10) / 100
    total = torch.bincount(torch.cat([a.train_y, a.val_y]), minlength=10) / 1000
    assert (share - total).abs().max() <= 0.011  # every class within one image of its share
    info = inspect_dataset(cfg)  # the same counts, from the files' headers and shapes
    assert (info.num_train, info.num_val, info.num_test, info.in_channels) == (900, 100, 200, 3)
    with pytest.raises(ConfigError, match=r"data\.val_size: 5000 validation images .* 1000"):
        inspect_dataset(DataConfig(name="cifar10", root=str(tmp_path)))


class _Payload:
    """Unpickling this runs os.mkdir(marker): what a crafted data file could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (str(self.marker),))


def test_a_crafted_cifar_pickle_is_refused_without_running_it(tmp_path):
    write_cifar10(tmp_path, per_batch=10, test=10)
    marker = tmp_path / "pwned"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    with open(batch, "wb") as f:
        pickle.dump({b"data": _Payload(marker), b"labels": [0]}, f, protocol=2)
    for load in (inspect_dataset, load_splits):
        with pytest.raises(
            ConfigError,
            match=r"data\.root: .*data_batch_1 is not a CIFAR batch "
            r"file .*refusing to load posix\.mkdir",
        ):
            load(DataConfig(name="cifar10", root=str(tmp_path), val_size=5))
    assert not marker.exists()


def test_cifar100_reads_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    train = {b"data": _fake_images(rng, 20), b"fine_labels": list(range(20)), b"coarse_labels": [0]}
    test = {b"data": _fake_images(rng, 5), b"fine_labels": [99, 1, 2, 3, 4]}
    _write_pickle(folder / "train", train)
    _write_pickle(folder / "test", test)
    fine = [f"class{i}".encode() for i in range(100)]
    _write_pickle(folder / "meta", {b"fine_label_names": fine, b"coarse_label_names": []})

    s = load_splits(DataConfig(name="cifar100", root=str(tmp_path), val_size=4))
    assert s.train_x.shape == (16, 3, 32, 32) and s.num_val == 4 and s.test_y.shape == (5,)
    assert s.num_classes == 100 and s.classes[99] == "class99"
    assert sorted(s.train_y.tolist() + s.val_y.tolist()) == list(range(20))
    assert s.test_y.tolist() == [99, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("name", "folder"), [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")]
)
def test_missing_cifar_without_download_explains_how_to_get_it(monkeypatch, tmp_path, name, folder):
    monkeypatch.setenv("SELAB_DATA", str(tmp_path))  # root unset: taken from the environment
    with pytest.raises(ConfigError) as info:
        load_splits(DataConfig(name=name))
    message = str(info.value)
    assert str(tmp_path.resolve() / folder) in message  # where it looked
    assert f"<root>/{folder}/" in message  # the expected layout
    assert "download: true" in message
    assert not (tmp_path / folder).exists()  # nothing fetched


# ----------------------------------------------------------------------------- imagefolder


def _write_pngs(folder: Path, color: tuple[int, int, int], n: int, mode: str = "RGB") -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (10, 12), color).convert(mode).save(folder / f"img{i}.png")


def test_imagefolder_without_split_folders(tmp_path):
    _write_pngs(tmp_path / "cat", (250, 10, 10), 5)
    _write_pngs(tmp_path / "dog", (10, 10, 250), 5)
    s = load_splits(DataConfig(name="imagefolder", root=str(tmp_path), image_size=8))
    assert s.classes == ["cat", "dog"] and s.num_classes == 2
    assert s.train_x.shape == (8, 3, 8, 8) and s.val_x.shape == (2, 3, 8, 8)
    assert sorted(s.val_y.tolist()) == [0, 1]  # stratified
    assert (s.pad, s.flip, s.in_channels, s.image_size) == (1, True, 3, 8)
    red = s.normalise(s.train_x)[:, 0].mean(dim=(1, 2))  # cats are red, dogs blue
    assert (red[s.train_y == 0] > 0).all() and (red[s.train_y == 1] < 0).all()


def test_imagefolder_with_train_and_val_folders_and_grayscale(tmp_path):
    for split, n in (("train", 4), ("val", 2)):
        _write_pngs(tmp_path / split / "a", (200, 200, 200), n, mode="L")
        _write_pngs(tmp_path / split / "b", (20, 20, 20), n, mode="L")
    s = load_splits(DataConfig(name="imagefolder", root=str(tmp_path)))
    assert s.train_x.shape == (8, 1, 32, 32) and s.val_x.shape == (4, 1, 32, 32)
    assert s.train_y.tolist() == [0] * 4 + [1] * 4 and s.val_y.tolist() == [0, 0, 1, 1]
    assert s.in_channels == 1 and s.pad == 4


def test_imagefolder_errors_on_empty_folder_and_empty_class(tmp_path):
    with pytest.raises(ConfigError, match="no class folders"):
        load_splits(DataConfig(name="imagefolder", root=str(tmp_path)))
    _write_pngs(tmp_path / "cat", (1, 2, 3), 2)
    (tmp_path / "dog").mkdir()
    with pytest.raises(ConfigError, match=r"class folder .*dog has no images"):
        load_splits(DataConfig(name="imagefolder", root=str(tmp_path)))


def test_imagefolder_over_the_memory_budget_streams_through_torchvision(tmp_path):
    """48x40 JPEGs, 60 per class, at 32 px: 3 x 120 x 32 x 32 bytes is over a 0 MB budget, so
    the set is read from disk by DataLoader workers (random-resized crop and flip for training,
    resize and center crop for evaluation) and a trainer learns from it."""
    write_image_folder(tmp_path, {"red": (220, 30, 30), "blue": (30, 30, 220)}, per_class=60)
    cfg = DataConfig(name="imagefolder", root=str(tmp_path), memory_budget_mb=0, val_fraction=0.25)
    info = inspect_dataset(cfg)
    assert info.streamed and info.memory_bytes == 0
    assert (info.num_train, info.num_val, info.in_channels, info.image_size) == (90, 30, 3, 32)
    s = load_splits(cfg, workers=2)
    assert s.streamed and (s.num_train, s.num_val, s.classes) == (90, 30, ["blue", "red"])
    g = torch.Generator().manual_seed(0)
    batches = list(s.train_batches(32, g, use_augmentation=True))
    assert [tuple(x.shape) for x, _ in batches] == [(32, 3, 32, 32)] * 2  # full batches only
    x, y = batches[0]
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    red = x[:, 0].mean(dim=(1, 2)) - x[:, 2].mean(dim=(1, 2))
    assert ((red > 0) == (y == 1)).all()  # labels follow the class folders
    val = list(s.eval_batches("val", 64))
    assert sum(len(yb) for _, yb in val) == 30
    assert not s.has_test and s.to("cpu") is s

    arch = ArchConfig.parse({"backbone": "cifar_resnet8", "num_classes": 2, "input_size": 32})
    torch.manual_seed(0)
    trainer = Trainer(
        build_model(arch), s, TrainConfig(epochs=2, batch_size=16, lr=0.05), "cpu", seed=0
    )
    results = [trainer.run_epoch() for _ in range(2)]
    assert results[-1].val_acc > 0.9 and results[-1].test_acc is None


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_shape_classes_and_learnable():
    cfg = DataConfig(
        name="synthetic", num_classes=3, channels=2, image_size=12, train_size=60, val_size=30
    )
    s = load_splits(cfg)
    assert s.train_x.shape == (60, 2, 12, 12) and s.val_x.shape == (30, 2, 12, 12)
    assert (s.num_classes, s.in_channels, s.image_size, s.flip) == (3, 2, 12, True)
    assert set(s.train_y.tolist()) == {0, 1, 2} and len(s.classes) == 3
    assert torch.equal(load_splits(cfg).val_x, s.val_x)  # generated from split_seed
    # nearest class mean already beats chance by far: the classes are learnable
    train_x, val_x = s.normalise(s.train_x), s.normalise(s.val_x)
    means = torch.stack([train_x[s.train_y == k].mean(0) for k in range(3)])
    dist = ((val_x[:, None] - means[None]) ** 2).sum(dim=(2, 3, 4))
    assert (dist.argmin(1) == s.val_y).float().mean() > 0.8


# ----------------------------------------------------------------------------- augmentation


def _crops(x: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every (2 pad + 1)^2 zero-padded crop of one image, by hand."""
    h, w = x.shape[-2:]
    padded = torch.zeros(x.shape[0], h + 2 * pad, w + 2 * pad)
    padded[:, pad : pad + h, pad : pad + w] = x
    return [padded[:, i : i + h, j : j + w] for i in range(2 * pad + 1) for j in range(2 * pad + 1)]


def _match(sample: torch.Tensor, candidates: list[torch.Tensor]) -> list[int]:
    return [k for k, c in enumerate(candidates) if torch.equal(sample, c)]


def test_augment_crop_is_a_padded_shift_of_each_sample():
    x = torch.randn(64, 3, 6, 5)
    out = augment(x, pad=2, flip=False, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    offsets = set()
    for i in range(64):
        hits = _match(out[i], _crops(x[i], 2))
        assert len(hits) == 1  # exactly one shifted window, and never a mirrored one
        offsets.add(hits[0])
    assert len(offsets) > 10  # offsets really vary per sample (25 possible)


def test_augment_flip_mirrors_some_samples_only():
    x = torch.randn(64, 2, 4, 4)
    out = augment(x, pad=0, flip=True, generator=torch.Generator().manual_seed(0))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(out[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 10 < sum(flipped) < 54


def test_augment_crop_and_flip_together():
    x = torch.randn(32, 1, 5, 5)
    out = augment(x, pad=1, flip=True, generator=torch.Generator().manual_seed(1))
    mirrored = 0
    for i in range(32):
        crops = _crops(x[i], 1)
        plain, flipped = _match(out[i], crops), _match(out[i], [c.flip(-1) for c in crops])
        assert plain or flipped
        mirrored += bool(flipped)
    assert 0 < mirrored < 32


def test_augment_is_deterministic_for_a_generator_and_off_when_nothing_to_do():
    x = torch.randn(16, 3, 8, 8)
    a = augment(x, 2, True, torch.Generator().manual_seed(5))
    b = augment(x, 2, True, torch.Generator().manual_seed(5))
    c = augment(x, 2, True, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert augment(x, 0, False, torch.Generator()) is x


def test_iterate_batches_covers_each_sample_once():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    batches = list(iterate_batches(x, y, 4, True, torch.Generator().manual_seed(0)))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    assert all(torch.equal(bx[:, 0].long(), by) for bx, by in batches)  # x and y stay paired
    kept = list(iterate_batches(x, y, 4, False, drop_last=True))
    assert [b[1].tolist() for b in kept] == [[0, 1, 2, 3], [4, 5, 6, 7]]
