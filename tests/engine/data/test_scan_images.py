"""The image scan: every image form, the parallel path, the incremental cache, and the dataset scan."""

from __future__ import annotations

import os
import shutil

import imagehash
import numpy as np
import pandas as pd
import pytest
from dataset_builders import save_rgb, smooth_rgb, write_forms
from PIL import Image

from engine.data import load_rgb, open_dataset
from engine.data.images import decode_rgb
from engine.data.scan import FILE_COLUMNS, SCAN_COLUMNS, scan_cache_path, scan_dataset, scan_file, scan_images


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    return write_forms(tmp_path_factory.mktemp("forms"))


@pytest.fixture(scope="module")
def rows(forms):
    table, rescanned = scan_images([str(p) for p in forms.values()], workers=1)
    assert rescanned == len(forms)
    return {name: table.iloc[k] for k, name in enumerate(forms)}


EXPECTED = {  # name: (mode, channels, bit depth, format, width, height)
    "rgb_jpeg": ("RGB", 3, 8, "JPEG", 48, 40),
    "rgb_png": ("RGB", 3, 8, "PNG", 48, 40),
    "gray16_png": ("I;16", 1, 16, "PNG", 48, 40),
    "rgb16_png": ("RGB", 3, 16, "PNG", 48, 40),
    "rgba_png": ("RGBA", 4, 8, "PNG", 48, 40),
    "palette_png": ("P", 1, 8, "PNG", 48, 40),
    "palette_transparent_gif": ("P", 1, 8, "GIF", 48, 40),
    "gray_png": ("L", 1, 8, "PNG", 48, 40),
    "cmyk_jpeg": ("CMYK", 4, 8, "JPEG", 48, 40),
    "exif_rotated_jpeg": ("RGB", 3, 8, "JPEG", 40, 48),
    "bilevel_png": ("1", 1, 1, "PNG", 48, 40),
    "webp": ("RGB", 3, 8, "WEBP", 48, 40),
    "big_jpeg": ("RGB", 3, 8, "JPEG", 640, 480),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_readable_form_reports_its_header_facts_and_pixel_stats(rows, forms, name):
    row = rows[name]
    mode, channels, depth, fmt, width, height = EXPECTED[name]
    assert (row["mode"], row["channels"], row["bit_depth"], row["format"]) == (mode, channels, depth, fmt)
    assert (row["width"], row["height"]) == (width, height)
    assert row["aspect"] == pytest.approx(width / height)
    assert pd.isna(row["error"])
    assert row["file_size"] == forms[name].stat().st_size
    assert len(row["sha1"]) == 40 and len(row["phash"]) == 16
    # The statistics are those of the image as load_rgb decodes it (thumbnail vs full: close, not equal).
    full = load_rgb(forms[name]).reshape(-1, 3).astype(float)
    assert [row["mean_r"], row["mean_g"], row["mean_b"]] == pytest.approx(full.mean(axis=0).tolist(), abs=4.0)
    assert row["brightness"] == pytest.approx(float(full.mean(axis=0) @ [0.299, 0.587, 0.114]), abs=4.0)
    assert 0 <= row["std_r"] <= 128


def test_exif_rotation_is_reported_and_applied(rows, forms):
    assert rows["exif_rotated_jpeg"]["exif_orientation"] == 6
    assert rows["rgb_jpeg"]["exif_orientation"] == 1
    assert load_rgb(forms["exif_rotated_jpeg"]).shape == (48, 40, 3)  # upright: 40 wide, 48 high
    assert load_rgb(forms["exif_rotated_jpeg"], max_side=24).shape == (24, 20, 3)


def test_sixteen_bit_is_scaled_not_truncated(forms, rows):
    gray = load_rgb(forms["gray16_png"])
    assert gray[0, 0, 0] == 0 and gray[-1, -1, 0] == 255  # the 0..65535 ramp maps onto 0..255
    assert rows["gray16_png"]["mean_r"] == pytest.approx(127.5, abs=3)
    # A 16-bit RGB PNG is the 8-bit picture times 257: the same statistics as the 8-bit original.
    original = smooth_rgb(1).reshape(-1, 3).mean(axis=0)
    assert [rows["rgb16_png"][c] for c in ("mean_r", "mean_g", "mean_b")] == pytest.approx(original.tolist(), abs=2)


def test_transparency_is_composited_on_white(forms, rows):
    assert rows["rgba_png"]["mean_r"] == pytest.approx(255.0) and rows["rgba_png"]["std_g"] == pytest.approx(0.0)
    gif = load_rgb(forms["palette_transparent_gif"])
    index0 = np.asarray(Image.open(forms["palette_transparent_gif"])) == 0
    assert index0.any() and (gif[index0] == 255).all()


def test_cmyk_and_palette_and_gray_decode_to_rgb(forms):
    for name in ("cmyk_jpeg", "palette_png", "gray_png", "bilevel_png"):
        rgb = load_rgb(forms[name])
        assert rgb.dtype == np.uint8 and rgb.shape == (40, 48, 3), name
    gray = load_rgb(forms["gray_png"])
    assert (gray[..., 0] == gray[..., 1]).all()
    cmyk = load_rgb(forms["cmyk_jpeg"]).astype(int)
    assert np.abs(cmyk - smooth_rgb(5)).mean() < 6  # Pillow undoes the Adobe inversion: colours survive


@pytest.mark.parametrize("name", ["truncated_jpeg", "truncated_png", "garbage_jpeg"])
def test_corrupt_and_truncated_files_get_an_error_not_an_exception(rows, name):
    row = rows[name]
    assert isinstance(row["error"], str) and row["error"]
    assert pd.isna(row["mean_r"]) and pd.isna(row["phash"])
    assert len(row["sha1"]) == 40  # the bytes were read: exact duplicates of a broken file are still found
    if name != "garbage_jpeg":  # a truncated file still has its header facts
        assert row["width"] > 0 and "truncated" in row["error"]
    else:
        assert "cannot be opened as an image" in row["error"]


def test_missing_and_unreadable_files_get_an_error(tmp_path):
    (tmp_path / "folder.png").mkdir()  # exists, but cannot be read as a file (chmod 000 cannot stop root)
    table, _ = scan_images([str(tmp_path / "gone.png"), str(tmp_path / "folder.png")], workers=1)
    assert "does not exist" in table.loc[0, "error"]
    assert table.loc[1, "error"].startswith("cannot be read (IsADirectoryError")


def test_thumbnail_of_16_bit_and_palette_images(forms):
    # Pillow cannot shrink I;16 in place; decode_rgb converts first (a bug of the first load_rgb).
    for name in ("gray16_png", "palette_png", "bilevel_png", "rgba_png"):
        assert max(load_rgb(forms[name], max_side=16).shape[:2]) == 16, name


def test_perceptual_hash_is_imagehash_phash(forms):
    for name in ("rgb_png", "gray_png", "big_jpeg"):
        thumb = decode_rgb(Image.open(forms[name]), max_side=64, draft_side=32)
        assert scan_file(str(forms[name]))["phash"] == str(imagehash.phash(Image.fromarray(thumb)))


def test_columns_and_dtypes(rows, forms):
    table, _ = scan_images([str(forms["rgb_png"]), str(forms["garbage_jpeg"])], workers=1)
    assert list(table.columns) == FILE_COLUMNS
    assert str(table["width"].dtype) == "Int64" and table["aspect"].dtype == np.float64
    assert pd.isna(table.loc[1, "width"]) and table["width"].to_numpy(dtype=float)[1] != 0


def test_parallel_scan_matches_the_inline_scan(tmp_path):
    paths = [str(save_rgb(tmp_path / f"{i}.png", i, size=(20 + i % 7, 24))) for i in range(60)]
    paths.append(paths[3])  # a repeated path comes back twice, scanned once
    seen = []
    inline, n_inline = scan_images(paths, workers=1)
    pooled, n_pooled = scan_images(paths, workers=2, progress=lambda done, total: seen.append((done, total)))
    assert n_inline == n_pooled == 60
    pd.testing.assert_frame_equal(inline, pooled)
    assert list(pooled["path"]) == paths
    assert seen[-1] == (60, 60) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_cache_rescans_only_what_changed(tmp_path):
    paths = [str(save_rgb(tmp_path / "img" / f"{i}.png", i)) for i in range(8)]
    cache = tmp_path / "cache" / "scan.parquet"
    first, n = scan_images(paths, cache_path=cache)
    assert n == 8 and cache.is_file()
    again, n = scan_images(paths, cache_path=cache)
    assert n == 0
    pd.testing.assert_frame_equal(first, again)

    save_rgb(tmp_path / "img" / "3.png", 100)  # new content; its size or mtime moves
    st = os.stat(paths[3])
    os.utime(paths[3], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    changed, n = scan_images(paths, cache_path=cache)
    assert n == 1
    assert changed.loc[3, "sha1"] != first.loc[3, "sha1"]
    assert changed.drop(index=3).equals(first.drop(index=3))
    _, n = scan_images(paths, cache_path=cache)
    assert n == 0

    # A subset scan keeps the other files' cached rows.
    _, n = scan_images(paths[:2], cache_path=cache)
    assert n == 0
    _, n = scan_images(paths, cache_path=cache)
    assert n == 0


def test_a_broken_cache_file_is_ignored(tmp_path):
    path = str(save_rgb(tmp_path / "a.png", 1))
    cache = tmp_path / "scan.parquet"
    cache.write_bytes(b"not parquet")
    _, n = scan_images([path], cache_path=cache)
    assert n == 1
    _, n = scan_images([path], cache_path=cache)
    assert n == 0


def test_scan_dataset_on_the_demo(demo_dataset, tmp_path):
    result = scan_dataset(demo_dataset, workspace=tmp_path)
    table = result.table
    assert list(table.columns) == SCAN_COLUMNS
    assert len(table) == len(demo_dataset.manifest) + len(demo_dataset.test_manifest)
    assert (table["split"] == "train").sum() == len(demo_dataset.manifest)
    train = table[table["split"] == "train"]
    assert train["sample_id"].tolist() == demo_dataset.manifest["sample_id"].tolist()
    assert train["label"].tolist() == demo_dataset.manifest["label"].tolist()
    assert table.loc[table["split"] == "test", "label"].isna().all()
    assert (table["width"] == 32).all() and (table["mode"] == "RGB").all() and table["error"].isna().all()
    assert result.rescanned == len(table) and result.cached == 0
    assert scan_cache_path(demo_dataset, tmp_path).is_file()
    again = scan_dataset(demo_dataset, workspace=tmp_path)
    assert (again.rescanned, again.cached) == (0, len(table))
    pd.testing.assert_frame_equal(table, again.table)
    assert [p.kind for p in again.problems] == [p.kind for p in result.problems]


def test_scan_dataset_problems_include_the_datasets_own(tmp_path):
    root = tmp_path / "ds"
    for i in range(3):
        save_rgb(root / "cat" / f"{i}.png", i)
        save_rgb(root / "dog" / f"{i}.png", 10 + i)
    shutil.copyfile(root / "cat" / "0.png", root / "dog" / "copy.png")
    (root / "dog" / "notes.pdf").write_bytes(b"%PDF")
    dataset = open_dataset(root)
    result = scan_dataset(dataset, workspace=tmp_path / "ws")
    kinds = [p.kind for p in result.problems]
    assert kinds[: len(dataset.problems)] == [p.kind for p in dataset.problems] == ["not_image"]
    assert "conflicting_labels" in kinds and "exact_duplicate" in kinds


def _worker_dies(paths):
    os._exit(3)


def test_a_dying_worker_becomes_a_clear_error(tmp_path, monkeypatch):
    import engine.data.scan as scan_module
    from engine.errors import DatasetError

    paths = []
    for i in range(60):
        (tmp_path / f"{i}.png").write_bytes(b"x")
        paths.append(str(tmp_path / f"{i}.png"))
    monkeypatch.setattr(scan_module, "_scan_chunk", _worker_dies)
    with pytest.raises(DatasetError, match="A process reading images died"):
        scan_images(paths, workers=2)
