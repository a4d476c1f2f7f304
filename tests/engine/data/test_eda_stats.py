"""EDA statistics and the problem finder, on small hand-made tables with numbers checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from engine.data.eda import (
    class_distribution,
    find_problems,
    imbalance_ratio,
    metadata_vs_label,
    normalization_stats,
    problems_table,
    property_summary,
    split_distribution,
)
from engine.data.hashing import connected_groups, near_duplicate_pairs
from engine.data.problems import PROBLEM_KINDS, Problem
from engine.data.scan import SCAN_COLUMNS
from engine.errors import DatasetError


def manifest(labels, **metadata) -> pd.DataFrame:
    classes = sorted(set(labels), key=lambda s: (len(s), s))
    frame = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(len(labels))],
            "path": [f"/d/s{i}.png" for i in range(len(labels))],
            "label": labels,
            "label_index": [classes.index(x) for x in labels],
            "group": None,
        }
    )
    for name, values in metadata.items():
        frame[name] = values
    return frame


def scan_row(sample_id, split="train", label="a", **facts) -> dict:
    row = dict.fromkeys(SCAN_COLUMNS)
    row.update(
        sample_id=sample_id,
        split=split,
        label=label if split == "train" else None,
        path=f"/d/{split}/{sample_id}.png",
        width=32,
        height=32,
        aspect=1.0,
        mode="RGB",
        channels=3,
        bit_depth=8,
        format="PNG",
        file_size=1000,
        exif_orientation=1,
        sha1=f"sha-{sample_id}",
        phash=f"{abs(hash(sample_id)) % (1 << 60):016x}",
        mean_r=100.0,
        mean_g=100.0,
        mean_b=100.0,
        std_r=10.0,
        std_g=10.0,
        std_b=10.0,
        brightness=100.0,
    )
    row.update(facts)
    if row["width"] and row["height"]:
        row["aspect"] = row["width"] / row["height"]
    return row


def table(*rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=SCAN_COLUMNS)


# ---------------------------------------------------------------- class balance


def test_class_distribution_in_class_order_with_empty_classes():
    m = manifest(["b", "a", "b", "b", "c", "a"])
    dist = class_distribution(m, ["c", "b", "a", "z"])
    assert dist["label"].tolist() == ["c", "b", "a", "z"]
    assert dist["count"].tolist() == [1, 3, 2, 0]
    assert dist["share"].tolist() == pytest.approx([1 / 6, 3 / 6, 2 / 6, 0])
    assert imbalance_ratio(dist) == math.inf
    assert imbalance_ratio(dist["count"][:3]) == 3.0
    assert imbalance_ratio([5, 5]) == 1.0
    assert math.isnan(imbalance_ratio([]))


# ---------------------------------------------------------------- metadata


def test_metadata_text_column_pools_rare_values_and_missing():
    m = manifest(["a", "a", "b", "b", "b", "a", "b"], site=["x", "x", "x", "y", "z", None, "w"])
    tab = metadata_vs_label(m, "site", max_values=3)
    # Top 2 values by frequency (x 3, then y/z/w 1 each: the first seen of those wins), the rest "other".
    assert tab.index.tolist() == ["x", "y", "other", "(missing)"]
    assert tab.columns.tolist() == ["a", "b"]
    assert tab.loc["x"].tolist() == [2, 1]
    assert tab.loc["other"].tolist() == [0, 2]
    assert tab.loc["(missing)"].tolist() == [1, 0]
    assert int(tab.to_numpy().sum()) == 7


def test_metadata_numeric_column_is_binned_in_order():
    ages = list(range(10, 110, 4))  # 25 distinct values
    m = manifest(["a" if v < 60 else "b" for v in ages], age=ages)
    tab = metadata_vs_label(m, "age", max_values=20)
    assert len(tab) == 10 and tab.to_numpy().sum() == 25
    lows = [float(name.split("–")[0]) for name in tab.index]
    assert lows == sorted(lows)
    assert tab.iloc[0].tolist() == [3, 0] and tab.iloc[-1]["a"] == 0


def test_metadata_few_numbers_stay_values_in_numeric_order():
    m = manifest(["a", "b", "a", "b"], score=[10, 2, 2, 1])
    assert metadata_vs_label(m, "score").index.tolist() == ["1", "2", "10"]


def test_metadata_unknown_column():
    with pytest.raises(DatasetError, match="no column 'nope'"):
        metadata_vs_label(manifest(["a"]), "nope")


# ---------------------------------------------------------------- properties and normalization


def test_property_summary_per_class_and_split():
    t = table(
        scan_row("1", label="a", width=10, height=20, brightness=50.0, file_size=100),
        scan_row("2", label="a", width=30, height=20, brightness=150.0, file_size=300),
        scan_row("3", label="a", width=None, height=None, error="is corrupt", brightness=None, file_size=7),
        scan_row("4", label="b", width=64, height=32, brightness=200.0, file_size=1000),
        scan_row("5", split="test", width=8, height=8),
    )
    s = property_summary(t)
    assert s["label"].tolist() == ["a", "b"]
    assert s["n"].tolist() == [3, 1]
    a = s.iloc[0]
    assert (a["width_median"], a["width_min"], a["width_max"]) == (20.0, 10.0, 30.0)
    assert (a["aspect_min"], a["aspect_max"]) == (0.5, 1.5)
    assert a["brightness_median"] == 100.0 and a["file_size_max"] == 300.0  # the corrupt row is not measured
    assert s.iloc[1]["aspect_median"] == 2.0
    by_split = property_summary(t, by="split")
    assert by_split["split"].tolist() == ["test", "train"] and by_split["n"].tolist() == [1, 4]


def test_normalization_stats_pool_within_and_between_images():
    t = table(
        scan_row("1", mean_r=0.0, mean_g=51.0, mean_b=255.0, std_r=0.0, std_g=0.0, std_b=0.0),
        scan_row("2", mean_r=255.0, mean_g=51.0, mean_b=255.0, std_r=0.0, std_g=51.0, std_b=0.0),
        scan_row("3", split="test", mean_r=7.0),  # test images do not count
        scan_row("4", error="is corrupt", mean_r=None),
    )
    mean, std = normalization_stats(t)
    assert mean == pytest.approx((0.5, 0.2, 1.0))
    # red: half the pixels 0, half 1 -> std 0.5; green: means equal, within-image std 0 and 0.2 -> sqrt(0.02).
    assert std == pytest.approx((0.5, math.sqrt(0.02), 0.0))
    with pytest.raises(DatasetError, match="No training image"):
        normalization_stats(t[t["split"] == "test"])


def test_normalization_stats_match_the_pixels(demo_dataset, tmp_path):
    from engine.data import load_rgb
    from engine.data.scan import scan_images

    paths = demo_dataset.manifest["path"].tolist()[:40]
    rows, _ = scan_images(paths, workers=1)
    mean, std = normalization_stats(rows.assign(split="train"))
    pixels = np.concatenate([load_rgb(p).reshape(-1, 3) for p in paths]).astype(float) / 255
    assert mean == pytest.approx(pixels.mean(axis=0).tolist(), abs=1e-6)  # 32x32 images: the thumbnail is the image
    assert std == pytest.approx(pixels.std(axis=0).tolist(), abs=1e-6)


# ---------------------------------------------------------------- splits


def test_split_distribution_counts_each_fold_and_the_holdout():
    m = manifest(["a", "a", "b", "b", "b", "a"])
    split = pd.DataFrame(
        {
            "sample_id": ["s0", "s1", "s2", "s3", "s4", "s5", "ghost"],
            "fold": [0, 1, 0, 1, -1, -1, 0],
            "is_holdout": [False, False, False, False, True, True, False],
        }
    )
    out = split_distribution(m, split)
    assert out.index.tolist() == ["fold 0", "fold 1", "holdout"]
    assert out.columns.tolist() == ["a", "b"]
    assert out.to_numpy().tolist() == [[1, 1], [1, 1], [1, 1]]
    no_holdout = split_distribution(m, split[split["fold"] >= 0].drop(columns="is_holdout"))
    assert no_holdout.index.tolist() == ["fold 0", "fold 1"]


# ---------------------------------------------------------------- problems


def kinds_by_path(problems):
    out = {}
    for p in problems:
        out.setdefault(p.path, []).append(p.kind)
    return out


def test_find_problems_names_every_kind():
    near = "f0f0f0f0f0f0f0f0"
    t = table(
        scan_row("ok1", phash="0123456789abcdef"),
        scan_row("dup1", label="a", sha1="same", phash="1111111111111111"),
        scan_row("dup2", label="b", sha1="same", phash="1111111111111111"),  # same bytes, other label
        scan_row("near1", phash=near),
        scan_row("near2", phash="f0f0f0f0f0f0f0f3"),  # 2 bits from near1
        scan_row("far", phash="f0f0f0f0f0f0ff0f"),  # 8 bits from near1: not a duplicate
        scan_row("tiny", width=8, height=12),
        scan_row("wide", width=500, height=100),
        scan_row("cmyk", mode="CMYK", channels=4, format="JPEG"),
        scan_row("deep", mode="I;16", channels=1, bit_depth=16),
        scan_row("rgb16", bit_depth=16),
        scan_row(
            "broken",
            error="is corrupt or truncated (OSError: image file is truncated)",
            width=640,
            height=480,
            phash=None,
            mean_r=None,
        ),
        scan_row("t_dup", split="test", sha1="same", phash="1111111111111111"),
        scan_row("t_near", split="test", phash="f0f0f0f0f0f0f0f1"),
    )
    found = find_problems(t)
    assert {p.kind for p in found} <= set(PROBLEM_KINDS)
    by_path = kinds_by_path(found)
    path = lambda sid, split="train": f"/d/{split}/{sid}.png"  # noqa: E731
    assert by_path[path("broken")] == ["corrupt"]
    assert by_path[path("dup1")] == ["conflicting_labels"]
    assert by_path[path("dup2")] == ["exact_duplicate"]
    assert by_path[path("near2")] == ["near_duplicate"]
    assert by_path[path("t_dup", "test")] == ["train_test_duplicate"]
    assert by_path[path("t_near", "test")] == ["train_test_duplicate"]
    assert by_path[path("tiny")] == ["tiny"]
    assert by_path[path("wide")] == ["extreme_aspect"]
    assert by_path[path("cmyk")] == ["odd_mode"] and by_path[path("deep")] == ["odd_mode"]
    assert by_path[path("rgb16")] == ["odd_mode"]
    for quiet in ("ok1", "near1", "far"):
        assert path(quiet) not in by_path, quiet
    messages = {p.path: p.message for p in found}
    assert "byte-identical to training image 'dup1' (label 'a')" in messages[path("dup2")]
    assert "(2 of 64 perceptual-hash bits differ) to training image 'near1'" in messages[path("near2")]
    assert "Test image 't_near' looks near-identical (1 of 64" in messages[path("t_near", "test")]
    assert "8x12 pixels" in messages[path("tiny")] and "5.0:1" in messages[path("wide")]
    assert "CMYK" in messages[path("cmyk")] and "16-bit" in messages[path("deep")]
    conflict = next(p for p in found if p.kind == "conflicting_labels")
    assert "different labels ['a', 'b']" in conflict.message
    assert "truncated" in messages[path("broken")]


def test_thresholds_are_parameters():
    t = table(
        scan_row("n1", phash="0000000000000000"),
        scan_row("n2", phash="000000000000003f"),  # 6 bits apart
        scan_row("s", width=40, height=20),
    )
    assert find_problems(t) == []
    loose = find_problems(t, near_duplicate_distance=6, tiny_side=24, max_aspect=1.5)
    assert sorted((p.kind, p.path) for p in loose) == [
        ("extreme_aspect", "/d/train/s.png"),
        ("near_duplicate", "/d/train/n2.png"),
        ("tiny", "/d/train/s.png"),
    ]


def test_a_chain_of_similar_images_never_reports_a_far_pair():
    # 0 - 1 - 2 - 3: each 3 bits from the next, 0 and 3 are 9 bits apart; one group.
    hashes = ["0000000000000000", "0000000000000007", "000000000000003f", "00000000000001ff"]
    t = table(*[scan_row(f"c{i}", phash=h) for i, h in enumerate(hashes)])
    found = find_problems(t, near_duplicate_distance=3)
    assert [p.kind for p in found] == ["near_duplicate"] * 3
    assert all("(3 of 64" in p.message for p in found)
    assert "(one of 4 similar images)" in found[0].message


def test_find_problems_scales_without_a_quadratic_loop():
    rng = np.random.default_rng(0)
    n = 20_000
    hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    hashes[1::1000] = hashes[0::1000] ^ np.uint64(0b101)  # 20 planted near-duplicate pairs, 2 bits apart
    frame = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "split": "train",
            "label": "a",
            "path": [f"/d/{i}.png" for i in range(n)],
            "width": 64,
            "height": 48,
            "aspect": 4 / 3,
            "mode": "RGB",
            "channels": 3,
            "bit_depth": 8,
            "format": "JPEG",
            "file_size": 1,
            "exif_orientation": 1,
            "sha1": [f"{i:040x}" for i in range(n)],
            "phash": [f"{int(h):016x}" for h in hashes],
            "error": None,
        }
    )
    import time

    start = time.process_time()
    found = find_problems(frame)
    assert time.process_time() - start < 5.0
    assert sorted(p.path for p in found) == sorted(f"/d/{i}.png" for i in range(1, n, 1000))


def test_problems_table():
    assert problems_table([]).columns.tolist() == ["kind", "path", "message", "severity"]
    frame = problems_table([Problem("odd_mode", "c.png", "16-bit"), Problem("tiny", "a.png", "small"),
                            Problem("corrupt", "b.png", "bad"), Problem("a_new_check", "d.png", "new"),
                            Problem("conflicting_labels", "e.png", "cat and dog")])
    assert frame.to_dict("records") == [  # the most serious first, otherwise in the order given
        {"kind": "corrupt", "path": "b.png", "message": "bad", "severity": "must_fix"},
        {"kind": "conflicting_labels", "path": "e.png", "message": "cat and dog", "severity": "must_fix"},
        {"kind": "tiny", "path": "a.png", "message": "small", "severity": "worth_a_look"},
        {"kind": "a_new_check", "path": "d.png", "message": "new", "severity": "worth_a_look"},
        {"kind": "odd_mode", "path": "c.png", "message": "16-bit", "severity": "note"},
    ]


def test_every_known_kind_has_a_severity_and_the_brief_s_must_fix_kinds_are_must_fix():
    from engine.data.problems import PROBLEM_SEVERITY, SEVERITIES, severity_of

    assert set(PROBLEM_SEVERITY) <= set(PROBLEM_KINDS) and set(PROBLEM_SEVERITY.values()) <= set(SEVERITIES)
    must = {"corrupt", "train_test_duplicate", "conflicting_labels", "missing", "outside_root"}
    assert {k for k in PROBLEM_KINDS if severity_of(k) == "must_fix"} >= must
    assert {severity_of(k) for k in ("exact_duplicate", "near_duplicate", "tiny", "extreme_aspect")} == {"worth_a_look"}
    assert severity_of("odd_mode") == "note"


# ---------------------------------------------------------------- the hash index itself


@pytest.mark.parametrize("distance", [0, 1, 4, 7, 12])
def test_near_duplicate_pairs_equal_the_exhaustive_search(distance):
    rng = np.random.default_rng(distance)
    base = rng.integers(0, 2**63, 300, dtype=np.int64).astype(np.uint64)
    flips = rng.integers(0, 64, size=(300, 3)).astype(np.uint64)
    near = base ^ (np.uint64(1) << flips[:, 0]) ^ (np.uint64(1) << flips[:, 1]) ^ (np.uint64(1) << flips[:, 2])
    hashes = np.concatenate([base, near[:150]])
    i, j, d = near_duplicate_pairs(hashes, distance)
    x = hashes[:, None] ^ hashes[None, :]
    full = np.bitwise_count(x)
    ei, ej = np.nonzero(np.triu(full <= distance, k=1))
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == list(zip(ei.tolist(), ej.tolist(), strict=True))
    assert (d == full[i, j]).all()


def test_connected_groups():
    groups = connected_groups(7, np.array([0, 3, 5, 6]), np.array([2, 4, 6, 2]))
    assert groups.tolist() == [0, 1, 0, 2, 2, 0, 0]
    assert connected_groups(3, np.array([], int), np.array([], int)).tolist() == [0, 1, 2]
