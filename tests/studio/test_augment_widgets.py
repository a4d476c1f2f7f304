"""Pure helpers of the Augmentation lab's widgets (no Streamlit run needed)."""

from __future__ import annotations

from studio.widgets.augment import _same, draw_caption, sample_paths


def test_sample_paths_cover_classes_and_follow_the_seed(demo_dataset):
    picks = sample_paths(demo_dataset, 5, 0)
    assert len(picks) == 5 and len({label for _, label in picks}) == 5  # one class after another
    assert sample_paths(demo_dataset, 5, 0) == picks
    assert sample_paths(demo_dataset, 5, 1) != picks
    assert all(path.endswith(".png") for path, _ in picks)


def test_same_tolerates_albumentations_float_noise_and_xy_forms():
    assert _same([0.9, 1.1], [0.9000000000000001, 1.1])
    assert _same([0.9, 1.1], {"x": [0.9, 1.1], "y": [0.9, 1.1]})
    assert not _same([0.9, 1.1], [0.8, 1.1])
    assert _same("jpeg", "jpeg") and not _same("jpeg", "webp")


def test_draw_caption_breaks_long_names():
    from engine.augment import Draw

    caption = draw_caption(0, Draw(image=None, applied=(("RandomResizedCrop", {}), ("HorizontalFlip", {}))))
    assert caption.replace("\u200b", "") == "draw 1: RandomResizedCrop, HorizontalFlip"
    assert draw_caption(2, Draw(image=None, applied=())) == "draw 3: nothing fired"
