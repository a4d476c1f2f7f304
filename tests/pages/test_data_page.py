"""The Data page in AppTest on the demo dataset: the numbers equal the engine's, every tab renders, the gallery
filters and pages, a split shows per fold, a dataset with a corrupt image shows its problem."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = str(REPO_ROOT / "studio" / "app.py")
TABS = ("Classes", "Metadata", "Image properties", "Problems", "Gallery")


@pytest.fixture(scope="module")
def page_workspace(tmp_path_factory, demo_spec_path):
    """One workspace for the module (the scan runs once), with the session's demo dataset open."""
    ws = tmp_path_factory.mktemp("data-page-ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOLD_STUDIO_WORKSPACE", str(ws))
        mp.setenv("FOLD_STUDIO_DATASET", str(demo_spec_path))
        yield ws


@pytest.fixture(scope="module")
def engine_view(demo_dataset, page_workspace):
    """What the engine says about the demo dataset, computed without the studio."""
    from engine.data.eda import class_distribution, imbalance_ratio, problems_table
    from engine.data.scan import scan_dataset

    scan = scan_dataset(demo_dataset, workspace=page_workspace)
    dist = class_distribution(demo_dataset.manifest, demo_dataset.classes)
    return {
        "scan": scan,
        "ratio": imbalance_ratio(dist.set_index("label")["count"]),
        "problems": problems_table(scan.problems),
    }


def data_page(tab: str = "Classes") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["data_tab"] = tab
    at.run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def gallery_status(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Page "))


def test_overview_numbers_are_the_engines(page_workspace, demo_dataset, engine_view):
    at = data_page()
    shown = metrics(at)
    assert shown["Training images"] == f"{len(demo_dataset.manifest):,}" == "1,438"
    assert shown["Classes"] == str(demo_dataset.num_classes) == "10"
    assert shown["Imbalance ratio"] == f"{engine_view['ratio']:.1f} : 1"
    must_fix = engine_view["problems"]["severity"].eq("must_fix").sum()
    assert shown["Problems to fix"] == f"{must_fix:,}"
    sizes = engine_view["scan"].table.query("split == 'train'")[["width", "height"]].value_counts()
    w, h = sizes.index[0]
    assert shown["Typical image size"] == f"{w} × {h}"
    chart = at.get("plotly_chart")[0].proto.spec
    assert '"Images per class"' in chart
    assert "Labels: column 'label', named in the dataset spec (train.label_column)." in [c.value for c in at.caption]


@pytest.mark.parametrize("tab", TABS)
def test_every_tab_renders(page_workspace, tab):
    at = data_page(tab)
    assert at.title[0].value == "Data"


def test_class_chart_controls(page_workspace):
    at = data_page()
    at.button_group(key="data_sort").set_value("count").run()
    at.button_group(key="data_shares").set_value("shares").run()
    assert not at.exception
    assert "Share of images (%)" in at.get("plotly_chart")[0].proto.spec
    assert at.toggle(key="data_log").disabled  # a log scale of shares would mislead
    at.button_group(key="data_shares").set_value("counts").run()
    at.toggle(key="data_log").set_value(True).run()
    assert not at.exception
    assert '"log"' in at.get("plotly_chart")[0].proto.spec


def test_metadata_as_heatmap(page_workspace):
    at = data_page("Metadata")
    assert at.selectbox(key="data_meta_column").value == "ink"
    at.button_group(key="data_meta_kind").set_value("Heatmap").run()
    assert not at.exception
    assert '"heatmap"' in at.get("plotly_chart")[0].proto.spec


def test_gallery_filters_by_class_and_pages(page_workspace, demo_dataset):
    at = data_page("Gallery")
    assert gallery_status(at).startswith("Page 1 of ")
    at.multiselect(key="data_gallery_classes").select("3").run()
    assert not at.exception
    n3 = int((demo_dataset.manifest["label"] == "3").sum())
    pages = math.ceil(n3 / (8 * 4))  # one class: 4 rows of 8
    assert gallery_status(at).startswith(f"Page 1 of {pages} · {n3:,} matching images in 1 class")
    headers = [m.value for m in at.markdown if m.value.startswith("**Class")]
    assert headers == [f"**Class 3** · {n3} images"]
    first_page = at.session_state["data_gallery_selected"]
    assert first_page.startswith("3/")

    at.button(key="data_gallery_next").click().run()
    assert not at.exception
    assert gallery_status(at).startswith(f"Page 2 of {pages}")
    ids = demo_dataset.manifest.query("label == '3'")["sample_id"].tolist()
    assert at.session_state["data_gallery_selected"] == ids[32]  # the first image of page 2, enlarged

    at.number_input(key="data_gallery_page").set_value(pages).run()
    assert gallery_status(at).startswith(f"Page {pages} of {pages}")
    assert at.button(key="data_gallery_next").disabled

    # Enlarge an image by its name: its facts appear.
    last = ids[-1]
    at.button(key=f"data_gallery_pick_{last}").click().run()
    assert not at.exception
    facts = at.dataframe[-1].value
    assert facts.set_index("Fact").loc["Sample id", "Value"] == last
    assert facts.set_index("Fact").loc["Size", "Value"] == "32 × 32 px"


def test_gallery_filters_by_metadata_and_range(page_workspace, demo_dataset, engine_view):
    at = data_page("Gallery")
    at.multiselect(key="data_gallery_meta_ink").select("light").run()
    n_light = int((demo_dataset.manifest["ink"] == "light").sum())
    assert f"{n_light:,} matching images" in gallery_status(at)

    brightness = engine_view["scan"].table.query("split == 'train'")["brightness"].to_numpy()
    light = demo_dataset.manifest["ink"].eq("light").to_numpy()
    cut = float(np.median(brightness[light]))
    at.slider(key="data_gallery_range_brightness").set_range(float(brightness.min()), cut).run()
    assert not at.exception
    expected = int((light & (brightness <= cut)).sum())
    assert 0 < expected < n_light
    assert f"{expected:,} matching image" in gallery_status(at)

    at.slider(key="data_gallery_range_brightness").set_range(float(brightness.min()), float(brightness.min())).run()
    assert not at.exception
    assert any("No image matches these filters" in w.value for w in at.warning)


def test_split_shows_per_fold(page_workspace, demo_dataset):
    manifest = demo_dataset.manifest
    rng = np.random.default_rng(0)
    fold = rng.integers(0, 3, len(manifest))
    fold[:100] = -1
    run = page_workspace / "runs" / "run-split"
    run.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"sample_id": manifest["sample_id"], "fold": fold, "is_holdout": fold == -1}).to_parquet(
        run / "split.parquet", index=False
    )
    at = data_page()
    assert at.selectbox(key="data_split_run").value == "run-split"
    charts = at.get("plotly_chart")
    assert len(charts) == 2 and "holdout" in charts[1].proto.spec


def test_corrupt_image_is_a_problem_not_a_traceback(tmp_path, monkeypatch):
    root = tmp_path / "tiny"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (40, 30), (i * 60, 90, 200)).save(root / "cat" / f"c{i}.png")
        Image.new("RGB", (30, 40), (200, i * 60, 90)).save(root / "dog" / f"d{i}.png")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(root))
    at = data_page("Problems")
    assert metrics(at)["Training images"] == "7"
    problems = at.dataframe[0].value
    assert "corrupt" in set(problems["kind"])
    at.session_state["data_tab"] = "Gallery"
    at.run()
    at.multiselect(key="data_gallery_classes").select("dog").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["unreadable"]  # its tile says so; the other three show


def test_problems_are_grouped_by_severity_and_the_headline_counts_what_must_be_fixed(tmp_path, monkeypatch):
    """Many mode notes must not bury the one conflicting label: the headline says 1, the notes wait below."""
    from PIL import Image

    root = tmp_path / "icons"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):  # alpha icons: each one a note
        alpha = np.full((40, 40, 1), 128, np.uint8)
        Image.fromarray(np.concatenate([rng.integers(0, 256, (40, 40, 3), np.uint8), alpha], 2),
                        "RGBA").save(root / "cat" / f"c{i}.png")
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), np.uint8)).save(root / "dog" / f"d{i}.png")
    same = rng.integers(0, 256, (40, 40, 3), np.uint8)
    Image.fromarray(same).save(root / "dog" / "same.png")
    Image.fromarray(same).save(root / "cat" / "same.png")  # the same picture, labelled twice
    monkeypatch.setenv("FOLD_STUDIO_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("FOLD_STUDIO_DATASET", str(root))
    at = data_page("Problems")
    headline = next(m for m in at.metric if m.label == "Problems to fix")
    assert headline.value == "1"
    assert headline.proto.delta == "7 minor" and "1 worth a look, 6 notes" in headline.proto.help
    labels = [e.label for e in at.expander]
    assert labels[0].startswith("**Must fix** · 1 (conflicting_labels 1)")
    assert any(label.startswith("**Notes** · 6 (odd_mode 6)") for label in labels)
    assert at.dataframe[0].value["kind"].tolist() == ["conflicting_labels"]
    assert len(at.dataframe) == 1  # the other groups are closed, so not computed

    at.session_state["data_problem_group_note"] = True
    at.run()
    assert not at.exception
    assert [set(d.value["kind"]) for d in at.dataframe] == [{"conflicting_labels"}, {"odd_mode"}]
