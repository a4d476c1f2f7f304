"""The fast path of training: decoded-image cache in runs, persistent workers, compile, automatic batch size."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from PIL import Image

from engine.data import decoded_cache
from engine.data.decoded_cache import DecodedImageCache, DecodingImageSource, load_resized
from engine.errors import ConfigError
from engine.runs.store import read_predictions, read_status
from engine.training import fastpath
from engine.training.config import load_run_configs
from engine.training.context import build_context
from engine.training.create import create_runs
from engine.training.data import AugmentedImages, make_loader
from engine.training.fastpath import find_batch_size, is_compiled, pad_batch, probe_batch_size
from engine.training.fit import open_run_images, train_run
from engine.training.loop import collect_logits
from tests.engine.training.conftest import tiny_config_dict

CLASSES = ("cat", "dog", "owl")


@pytest.fixture
def small_dataset(tmp_path):
    """30 JPEGs of three classes (10 each), 40 x 56 px: a run over them trains in seconds."""
    root = tmp_path / "small"
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(10):
            base = np.zeros((40, 56, 3), np.uint8)
            base[..., c] = 160
            noise = rng.integers(0, 60, (40, 56, 3), dtype=np.uint8)
            Image.fromarray(base + noise).save(root / name / f"{i}.jpg", quality=90)
    return root


def _make_run(workspace, dataset, **sections) -> object:
    cfg = tiny_config_dict(dataset, **{"train.batch_size": 8, **sections})
    return create_runs(load_run_configs(cfg), workspace=workspace)[0]


@pytest.fixture
def decode_counter(monkeypatch):
    """Counts the images the cache module decodes in this process (builds of < 32 images stay in-process)."""
    calls = []
    real = decoded_cache.decode_rgb

    def counting(img, **kwargs):
        calls.append(img.filename)
        return real(img, **kwargs)

    monkeypatch.setattr(decoded_cache, "decode_rgb", counting)
    return calls


def test_a_second_run_on_the_same_dataset_decodes_no_image(workspace, small_dataset, decode_counter):
    first = _make_run(workspace, small_dataset)
    train_run(first, folds=[0])
    cache = read_status(first)["image_cache"]
    assert cache["state"] == "ready" and cache["cached"] and cache["decoded"] == 30 and cache["reused"] == 0
    assert len(decode_counter) == 30  # each image once, for the whole run (train, validation, predictions)

    decode_counter.clear()
    second = _make_run(workspace, small_dataset, **{"train.lr": 1e-3})
    train_run(second, folds=[0])
    cache = read_status(second)["image_cache"]
    assert cache["decoded"] == 0 and cache["reused"] == 30
    assert decode_counter == []  # neither the cache nor training nor prediction decoded a single image
    assert len(read_predictions(second, "oof")) > 0


def test_cached_and_uncached_runs_see_the_same_pixels_before_augmentation(workspace, small_dataset):
    cached = build_context(_make_run(workspace, small_dataset))
    uncached = build_context(_make_run(workspace, small_dataset, **{"train.data_cache": False}))
    a = cached.images(cached.samples, train=True).source
    b = uncached.images(uncached.samples, train=True).source
    assert isinstance(a, DecodedImageCache) and isinstance(b, DecodingImageSource)
    assert a.paths == b.paths and len(a) == 30
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i], b[i])
        np.testing.assert_array_equal(a[i], load_resized(a.paths[i], cached.stored_size))


def test_a_cache_over_the_limit_falls_back_to_decoding(workspace, small_dataset):
    run = _make_run(workspace, small_dataset, **{"train.cache_max_gb": 1e-6})
    ctx = build_context(run)
    open_run_images(ctx)  # what train_run does before its first fold
    assert isinstance(ctx.open_images(), DecodingImageSource)
    assert read_status(run)["image_cache"] == {"state": "ready", "cached": False, "images": 30,
                                               "stored_size": ctx.stored_size}


def test_loaders_keep_workers_and_pin_memory_for_cuda():
    data = AugmentedImages([np.zeros((8, 8, 3), np.uint8)] * 4, None, 8)  # a list is an image source
    assert make_loader(data, batch_size=2, shuffle=False, num_workers=2, device=torch.device("cpu")).persistent_workers
    assert not make_loader(
        data, batch_size=2, shuffle=False, num_workers=0, device=torch.device("cpu")
    ).persistent_workers
    assert make_loader(data, batch_size=2, shuffle=False, num_workers=0, device=torch.device("cuda")).pin_memory


# ---------------------------------------------------------------- automatic batch size


def _oom_above(limit: int, tried: list[int]):
    def step(size: int) -> None:
        tried.append(size)
        if size > limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {size} GiB")

    return step


def test_batch_size_halves_until_a_step_fits():
    tried: list[int] = []
    assert find_batch_size(_oom_above(12, tried), 64) == 8
    assert tried == [64, 32, 16, 8]
    assert find_batch_size(_oom_above(100, []), 64) == 64


def test_batch_size_search_lets_other_errors_through_and_refuses_when_nothing_fits():
    def broken(size: int) -> None:
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        find_batch_size(broken, 8)
    with pytest.raises(ConfigError, match="Not even a batch of one"):
        find_batch_size(_oom_above(0, []), 8)


def test_probe_runs_real_steps_and_leaves_the_model_as_it_was():
    import timm

    model = timm.create_model("test_resnet", num_classes=3)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    real_forward = model.forward
    seen: list[int] = []

    def forward(x):  # a device with room for 4 images
        seen.append(x.shape[0])
        if x.shape[0] > 4:
            raise torch.OutOfMemoryError("CUDA out of memory.")
        return real_forward(x)

    model.forward = forward
    size = probe_batch_size(
        model,
        torch.nn.CrossEntropyLoss(),
        start=16,
        image_size=32,
        num_classes=3,
        autocast=contextlib.nullcontext,
        channels_last=False,
    )
    assert size == 4 and seen == [16, 8, 4]
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=k)


# ---------------------------------------------------------------- torch.compile with static shapes


class _ShapeRecorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.sizes: list[int] = []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        return self.linear(x.float().mean(dim=(2, 3)))


def _logits_of(model, n_images: int, batch_size: int) -> dict[str, np.ndarray]:
    images = [np.full((4, 4, 3), i * 10, np.uint8) for i in range(n_images)]
    loader = make_loader(
        AugmentedImages(images, None, 4),
        batch_size=batch_size,
        shuffle=False,
        num_workers=0,
        device=torch.device("cpu"),
    )
    return collect_logits(model, loader, lambda x: x.float(), views=("identity", "hflip"))


def test_a_compiled_model_only_sees_full_batches_and_the_padding_is_dropped():
    plain = _ShapeRecorder()
    expected = _logits_of(plain, 10, 4)
    assert sorted(set(plain.sizes)) == [2, 4]
    marked = _ShapeRecorder()
    marked.load_state_dict(plain.state_dict())
    setattr(marked, fastpath._COMPILED_MARK, True)  # what compile_model leaves; the padding is the loop's part
    assert is_compiled(marked)
    got = _logits_of(marked, 10, 4)
    assert set(marked.sizes) == {4}
    for view in expected:
        assert got[view].shape == (10, 2)
        np.testing.assert_allclose(got[view], expected[view], rtol=1e-6)


def test_pad_batch_keeps_channels_last():
    x = torch.randn(3, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    padded = pad_batch(x, 5)
    assert padded.shape == (5, 3, 8, 8) and padded.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(padded[:3], x) and not padded[3:].any()
    assert pad_batch(x, 3) is x


def test_compiled_model_traces_one_graph_for_a_ragged_prediction_pass():
    """Real torch.compile (the 'eager' backend: dynamo's tracing and guards without inductor's C++ build)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2)
    )
    eager = _logits_of(model, 10, 4)
    fastpath.compile_model(model, backend="eager")
    compiled = _logits_of(model, 10, 4)
    assert counters["stats"]["unique_graphs"] == 1  # batches 4, 4 and the last 2 padded to 4: one shape
    for view in eager:
        np.testing.assert_allclose(compiled[view], eager[view], rtol=1e-5, atol=1e-6)


def test_train_run_with_compile_pads_the_last_prediction_batch(workspace, small_dataset, monkeypatch):
    compiled = []

    def mark_only(model, **kwargs):  # inductor takes minutes on a CPU; the wiring is what is tested here
        compiled.append(model)
        setattr(model, fastpath._COMPILED_MARK, True)
        return model

    monkeypatch.setattr(fastpath, "compile_model", mark_only)
    run = _make_run(workspace, small_dataset, **{"train.compile": True})
    train_run(run, folds=[0])
    assert len(compiled) == 1
    samples = build_context(run).samples
    oof = read_predictions(run, "oof")
    n_val = int((samples["fold"] == 0).sum())
    assert n_val % 16 != 0  # validation batches are 2 x 8: the last one is padded
    assert sorted(oof["sample_id"].unique()) == sorted(samples.loc[samples["fold"] == 0, "sample_id"])
    assert len(oof) == n_val * 2  # two TTA views, no padding row


@pytest.mark.skipif(not torch.cuda.is_available(), reason="inductor compiles for minutes on a CPU; runs on CUDA only")
def test_inductor_compile_on_cuda_matches_eager():
    import timm

    model = timm.create_model("resnet18", num_classes=5).cuda().eval().to(memory_format=torch.channels_last)
    x = torch.randn(6, 3, 64, 64, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        eager = model(x).float()
        fastpath.compile_model(model)
        compiled = model(pad_batch(x, 8))[:6].float()
    torch.testing.assert_close(compiled, eager, rtol=2e-2, atol=2e-2)
