"""The input pipeline: image modes, final size, uint8 CHW, device normalization, augmentation reseeding."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from engine.training.data import AugmentedImages, DeviceInput, FileImageSource, make_loader, reseed_pipeline


class ArraySource:
    """An in-memory image source (the interface a decoded-image cache implements)."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def pattern(h=24, w=24) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def flips_applied(out: np.ndarray, image: np.ndarray) -> tuple[bool, bool]:
    for h in (False, True):
        for v in (False, True):
            candidate = image[:: -1 if v else 1, :: -1 if h else 1]
            if np.array_equal(out, candidate):
                return h, v
    raise AssertionError("not a flip of the input")


def write_images(folder) -> list[str]:
    """One file per mode the scan handles: 16-bit, RGBA, palette, grayscale, EXIF-rotated."""
    paths = {}
    gray16 = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 100
    paths["16bit.png"] = Image.fromarray(gray16)
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :15, 3] = 255
    paths["rgba.png"] = Image.fromarray(rgba, "RGBA")
    paths["palette.png"] = Image.fromarray(pattern(20, 30)).convert("P")
    paths["gray.png"] = Image.fromarray(pattern(20, 30)[..., 0], "L")
    rotated = Image.fromarray(pattern(20, 30))
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90 on display
    out = []
    for name, img in paths.items():
        img.save(folder / name)
        out.append(str(folder / name))
    rotated.save(folder / "exif.jpg", exif=exif)
    return [*out, str(folder / "exif.jpg")]


def test_every_image_mode_becomes_uint8_chw_at_the_model_size(tmp_path):
    paths = write_images(tmp_path)
    data = AugmentedImages(FileImageSource(paths), [0] * len(paths), 16)
    for i in range(len(paths)):
        image, label = data[i]
        assert image.dtype == torch.uint8 and image.shape == (3, 16, 16) and label == 0
    rgba, _ = data[1]
    assert rgba[:, :, -1].min() == 255  # transparent half composited on white
    exif = AugmentedImages(FileImageSource(paths[-1:]), None, 30)
    assert FileImageSource(paths[-1:])[0].shape == (30, 20, 3)  # EXIF rotation applied before resizing
    assert exif[0][1] == -1


def test_pipeline_output_is_resized_when_it_is_not_the_model_size():
    pipeline = A.Compose([A.RandomCrop(20, 20)])
    data = AugmentedImages(ArraySource([pattern()]), [1], 32, pipeline=pipeline, seed=0)
    assert data[0][0].shape == (3, 32, 32)


def light_pipeline():
    from engine.augment.pipeline import pipeline_from_dict
    from engine.augment.presets import preset

    return pipeline_from_dict(preset("light", 24))


def epoch_images(data: AugmentedImages, epoch: int) -> list[np.ndarray]:
    data.set_epoch(epoch)
    return [data[i][0].numpy() for i in range(len(data))]


def test_two_epochs_augment_differently_and_the_same_seed_repeats():
    images = [pattern()] * 12
    data = AugmentedImages(ArraySource(images), None, 24, pipeline=light_pipeline(), seed=5)
    first, second = epoch_images(data, 1), epoch_images(data, 2)
    assert sum(not np.array_equal(a, b) for a, b in zip(first, second, strict=True)) >= 6
    again = AugmentedImages(ArraySource(images), None, 24, pipeline=light_pipeline(), seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(first, epoch_images(again, 1), strict=True))
    other_seed = AugmentedImages(ArraySource(images), None, 24, pipeline=light_pipeline(), seed=6)
    assert not all(np.array_equal(a, b) for a, b in zip(first, epoch_images(other_seed, 1), strict=True))


def test_each_transform_gets_its_own_random_stream():
    # Compose.set_random_seed hands every transform the same seed: two p=0.5 flips would always agree.
    image = pattern()
    pipeline = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])
    reseed_pipeline(pipeline, [0, 1, 0])
    flips = [flips_applied(pipeline(image=image)["image"], image) for _ in range(64)]
    assert any(h != v for h, v in flips)
    assert 10 < sum(h for h, _ in flips) < 54


def test_dataloader_workers_draw_different_augmentations_each_epoch():
    image = pattern()
    data = AugmentedImages(
        ArraySource([image] * 8), None, 24, pipeline=A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]), seed=3
    )
    loader = make_loader(data, batch_size=1, shuffle=False, num_workers=2, device=torch.device("cpu"))

    def run(epoch):
        data.set_epoch(epoch)
        return [flips_applied(x[0].permute(1, 2, 0).numpy(), image) for x, _ in loader]

    epoch1, epoch2 = run(1), run(2)
    worker0, worker1 = epoch1[0::2], epoch1[1::2]  # batches alternate between the two workers
    assert worker0 != worker1, "both workers repeated the same augmentations"
    assert epoch1 != epoch2, "the epochs repeated the same augmentations"
    assert run(1) == epoch1, "the same seed and epoch must give the same augmentations"


@pytest.mark.parametrize("normalized_pipeline", [False, True])
def test_device_input_normalizes_like_timm(normalized_pipeline):
    cfg = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    expected = (images.float() / 255 - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(
        1, 3, 1, 1
    )
    to_input = DeviceInput(cfg, torch.device("cpu"))
    if normalized_pipeline:  # a pipeline ending with A.Normalize hands over floats already
        torch.testing.assert_close(to_input(expected), expected)
    else:
        torch.testing.assert_close(to_input(images), expected, rtol=1e-5, atol=1e-5)
