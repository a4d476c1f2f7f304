"""Decoded-image cache: same pixels as decoding, incremental rebuilds, size bound, pickling, store lifecycle."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data.decoded_cache import (
    DecodedImageCache,
    DecodingImageSource,
    build_decoded_cache,
    cached_shape,
    decoded_cache_status,
    load_resized,
    open_image_source,
    resize_for_cache,
    stored_size_for,
)
from engine.data.images import load_rgb
from engine.errors import DatasetError

S = 32  # stored shorter side: small, so every test stays fast


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth image with some texture (compresses like a photo, not like noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 / max(w - 1, 1)), (yy * 255 / max(h - 1, 1)), ((xx + yy) % 64) * 4], axis=-1)
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def _touch_later(path: Path) -> None:
    """Move the mtime forward so a rewrite within the same clock tick still counts as a change."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def varied_images(tmp_path) -> list[Path]:
    """PNG, JPEG, 16-bit PNG, RGBA PNG, EXIF-rotated JPEG, an image smaller than S, a panorama."""
    d = tmp_path / "imgs"
    d.mkdir()
    paths = []
    p = d / "a.png"
    Image.fromarray(_photo(60, 80, 0)).save(p)
    paths.append(p)
    p = d / "b.jpg"
    Image.fromarray(_photo(48, 90, 1)).save(p, quality=90)
    paths.append(p)
    p = d / "c16.png"
    Image.fromarray((np.linspace(0, 65535, 70 * 50).reshape(70, 50)).astype(np.uint16)).save(p)
    paths.append(p)
    p = d / "d_rgba.png"
    rgba = np.dstack([_photo(40, 64, 2), np.tile(np.linspace(0, 255, 64).astype(np.uint8), (40, 1))])
    Image.fromarray(rgba, "RGBA").save(p)
    paths.append(p)
    p = d / "e_rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(_photo(40, 100, 3)).save(p, quality=92, exif=exif)
    paths.append(p)
    p = d / "f_small.png"
    Image.fromarray(_photo(20, 24, 4)).save(p)
    paths.append(p)
    p = d / "g_panorama.png"
    Image.fromarray(_photo(40, 400, 5)).save(p)
    paths.append(p)
    return paths


@pytest.fixture
def many_images(tmp_path) -> list[Path]:
    """40 small JPEGs: enough for the process pool to run."""
    d = tmp_path / "many"
    d.mkdir()
    paths = []
    for i in range(40):
        p = d / f"{i:03d}.jpg"
        Image.fromarray(_photo(48, 64, 100 + i)).save(p, quality=85)
        paths.append(p)
    return paths


def test_resize_rule_keeps_aspect_and_never_enlarges():
    assert cached_shape(480, 640, 256) == (256, 341)
    assert cached_shape(640, 480, 256) == (341, 256)
    assert cached_shape(100, 120, 256) == (100, 120)  # smaller than S: stored as is
    assert cached_shape(100, 2000, 50) == (10, 200)  # longer side capped at 4 x S
    assert stored_size_for(224) == 256 and stored_size_for(128) == 160


def test_cache_returns_the_pixels_of_decoding_and_resizing(varied_images, workspace):
    cache = build_decoded_cache(varied_images, S, workspace=workspace, workers=1)
    assert isinstance(cache, DecodedImageCache) and len(cache) == len(varied_images)
    for i, p in enumerate(varied_images):
        expected = resize_for_cache(load_rgb(p), S)
        got = cache[i]
        assert got.dtype == np.uint8 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected, err_msg=str(p))
        np.testing.assert_array_equal(got, load_resized(p, S))
    shapes = {p.name: cache[i].shape for i, p in enumerate(varied_images)}
    assert shapes["a.png"] == (32, 43, 3)
    assert shapes["e_rotated.jpg"] == (80, 32, 3)  # 40x100 stored on its side by EXIF: now tall
    assert shapes["f_small.png"] == (20, 24, 3)
    assert shapes["g_panorama.png"] == (13, 128, 3)  # longer side capped at 4 x S
    assert cache.nbytes == sum(int(np.prod(s)) for s in shapes.values())
    assert cache.paths == [os.path.abspath(p) for p in varied_images]


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_with_the_same_result_cached_or_not(tmp_path, workspace):
    path = tmp_path / "large.jpg"
    exif = Image.Exif()
    exif[0x0112] = 8  # shown rotated: the shape comes from the full size, turned
    yy, xx = np.mgrid[0:300, 0:400]
    smooth = np.stack([xx * 255 // 399, yy * 255 // 299, (xx + yy) * 255 // 698], axis=-1)  # photo-like gradients
    noisy = smooth + np.random.default_rng(9).normal(0, 6, smooth.shape)
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, quality=90, exif=exif)
    cache = build_decoded_cache([path], S, workspace=workspace, workers=1)
    assert cache[0].shape == (43, 32, 3)  # 400 x 300 upright is 300 wide: shorter side 32, longer 400 * 32 / 300
    np.testing.assert_array_equal(cache[0], load_resized(path, S))
    full = resize_for_cache(load_rgb(path), S)  # full decode then shrink: the DCT-scaled decode is close to it
    assert full.shape == cache[0].shape
    assert np.abs(full.astype(int) - cache[0].astype(int)).mean() < 3


def test_second_build_decodes_nothing_and_one_change_decodes_one(many_images, workspace):
    calls: list[tuple[int, int]] = []
    first = build_decoded_cache(many_images, S, workspace=workspace, workers=2, progress=lambda d, t: calls.append((d, t)))
    assert first.decoded == 40 and first.reused == 0
    assert calls[0] == (0, 40) and calls[-1] == (40, 40)

    calls.clear()
    second = build_decoded_cache(many_images, S, workspace=workspace, workers=2, progress=lambda d, t: calls.append((d, t)))
    assert second.decoded == 0 and second.reused == 40 and calls == [(0, 0)]
    assert second.store == first.store  # nothing written

    Image.fromarray(_photo(48, 64, 999)).save(many_images[7], quality=85)
    _touch_later(many_images[7])
    calls.clear()
    third = build_decoded_cache(many_images, S, workspace=workspace, workers=2, progress=lambda d, t: calls.append((d, t)))
    assert third.decoded == 1 and third.reused == 39 and calls[-1] == (1, 1)
    for i, p in enumerate(many_images):
        np.testing.assert_array_equal(third[i], load_resized(p, S))
    np.testing.assert_array_equal(first[7], second[7])  # an older view still reads its own store


def test_new_files_are_added_and_removed_files_dropped(many_images, workspace):
    build_decoded_cache(many_images, S, workspace=workspace, workers=2)
    extra = many_images[0].parent / "new.jpg"
    Image.fromarray(_photo(64, 48, 7)).save(extra, quality=85)
    many_images[3].unlink()
    paths = [p for i, p in enumerate(many_images) if i != 3] + [extra]
    status = decoded_cache_status(paths, S, workspace=workspace)
    assert status["exists"] and status["images"] == 39 and status["changed"] == 1
    cache = build_decoded_cache(paths, S, workspace=workspace, workers=2)
    assert cache.decoded == 1 and cache.reused == 39
    np.testing.assert_array_equal(cache[len(paths) - 1], load_resized(extra, S))
    status = decoded_cache_status(paths, S, workspace=workspace)
    assert status["images"] == 40 and status["changed"] == 0
    assert status["bytes"] == cache.nbytes  # the removed image's row is gone


def test_too_small_a_limit_falls_back_to_decoding(varied_images, workspace, caplog):
    with caplog.at_level(logging.WARNING, logger="engine.data.decoded_cache"):
        assert build_decoded_cache(varied_images, S, workspace=workspace, max_bytes=1000) is None
    assert "cache_max_gb" in caplog.text and "Decoding every image" in caplog.text
    assert not decoded_cache_status(varied_images, S, workspace=workspace)["exists"]
    source = open_image_source(varied_images, S, workspace=workspace, max_bytes=1000)
    assert isinstance(source, DecodingImageSource) and len(source) == len(varied_images)
    np.testing.assert_array_equal(source[4], load_resized(varied_images[4], S))


def test_an_undecodable_image_fails_on_read_naming_the_file(varied_images, workspace):
    bad = varied_images[0].parent / "broken.jpg"
    bad.write_bytes(varied_images[1].read_bytes()[:300])  # truncated JPEG
    cache = build_decoded_cache([*varied_images, bad], S, workspace=workspace, workers=1)
    np.testing.assert_array_equal(cache[0], load_resized(varied_images[0], S))
    with pytest.raises(DatasetError, match="broken.jpg"):
        cache[len(varied_images)]


def test_old_stores_are_deleted_once_nobody_reads_them(many_images, workspace):
    first = build_decoded_cache(many_images, S, workspace=workspace, workers=1)
    old_store = first.store
    Image.fromarray(_photo(48, 64, 1234)).save(many_images[0], quality=85)
    _touch_later(many_images[0])
    build_decoded_cache(many_images, S, workspace=workspace, workers=1)
    assert old_store.exists()  # `first` still holds it
    del first
    Image.fromarray(_photo(48, 64, 4321)).save(many_images[1], quality=85)
    _touch_later(many_images[1])
    latest = build_decoded_cache(many_images, S, workspace=workspace, workers=1)
    assert not old_store.exists()
    assert sorted(p.name for p in latest.store.parent.iterdir() if p.name.startswith("store-")) == [latest.store.name]


class _PixelSums:
    """A map-style dataset (module level, so spawn can pickle it): (sum of image i's pixels, i)."""

    def __init__(self, source):
        self.source = source

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        return int(self.source[i].astype(np.int64).sum()), i


def test_pickled_cache_is_read_by_dataloader_workers(many_images, workspace):
    torch = pytest.importorskip("torch")
    cache = build_decoded_cache(many_images, S, workspace=workspace, workers=1)
    cache[0]  # the parent has mapped the file; a pickled copy must map it again on its own
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._pixels is None
    np.testing.assert_array_equal(clone[5], cache[5])

    expected = {i: int(load_resized(p, S).astype(np.int64).sum()) for i, p in enumerate(many_images)}
    # The workers get `clone`, which has never mapped the file: each maps it on its first read. Under
    # spawn (macOS, Windows, Python 3.14's forkserver) they would get it by pickling, as the round trip
    # above does; the default fork is used here because spawned workers take tens of seconds each to
    # import torch on a busy 2-core machine.
    loader = torch.utils.data.DataLoader(_PixelSums(clone), batch_size=8, num_workers=2)
    sums = {int(i): int(s) for s_batch, i_batch in loader for s, i in zip(s_batch, i_batch, strict=True)}
    assert sums == expected
