"""Pretrained weights the timm way, off-line: a real Hugging Face cache entry built in a temporary HF_HUB_CACHE."""

from __future__ import annotations

import copy
import hashlib
import re

import numpy as np
import pytest
import timm
import torch
import yaml
from PIL import Image

from engine.errors import ConfigError, RunError
from engine.offline import USER_VALUE_VAR
from engine.training.config import ModelConfig, load_run_configs
from engine.training.config import read_run_config as read_config
from engine.training.create import create_runs
from engine.training.models import create_model
from engine.training.pretrained import (
    describe_pretrained,
    fetch_pending_weights,
    hub_cache_dir,
    hub_weights,
    resolve_weights,
    weights_to_load,
)

TEST_RESNET_HUB_ID = "timm/test_resnet.r160_in1k"  # timm 1.0.31's pretrained config of test_resnet


def pre_logits(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The backbone's output (what pretrained weights decide; the classifier is new for our classes)."""
    model.eval()
    with torch.no_grad():
        return model.forward_head(model.forward_features(images), pre_logits=True)


def demo_batch(dataset, n: int = 8, size: int = 32) -> torch.Tensor:
    """The first ``n`` demo images, as the model sees them (test_resnet's mean / std are 0.5)."""
    arrays = [np.asarray(Image.open(p).convert("RGB").resize((size, size)), dtype=np.float32) / 255.0
              for p in dataset.manifest["path"][:n]]
    return (torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) - 0.5) / 0.5


def test_hub_weights_come_from_timms_pretrained_config():
    weights = hub_weights("test_resnet")
    assert (weights.hf_hub_id, weights.revision, weights.filenames) == (
        TEST_RESNET_HUB_ID, None, ("model.safetensors", "pytorch_model.bin"))
    assert hub_weights("resnet18.a1_in1k").hf_hub_id == "timm/resnet18.a1_in1k"  # a tag picks its own weights
    assert hub_weights("resnet18").hf_hub_id == timm.models.get_pretrained_cfg("resnet18").hf_hub_id


def test_hub_cache_folder_follows_huggingface_hub_precedence(tmp_path):
    assert hub_cache_dir({"HF_HUB_CACHE": "/a", "HF_HOME": "/b"}) == hub_cache_dir({"HF_HUB_CACHE": "/a"})
    assert str(hub_cache_dir({"HF_HUB_CACHE": "/a", "HF_HOME": "/b"})) == "/a"
    assert str(hub_cache_dir({"HF_HOME": "/b", "XDG_CACHE_HOME": "/c"})) == "/b/hub"
    assert str(hub_cache_dir({"XDG_CACHE_HOME": "/c"})) == "/c/huggingface/hub"


def test_cached_hub_weights_load_exactly_as_timm_create_model_pretrained(hub_cache):
    _, source = hub_cache.add("test_resnet", seed=3)
    torch.manual_seed(0)
    ours = create_model(ModelConfig(name="test_resnet", pretrained="hub"), num_classes=4)
    torch.manual_seed(0)  # timm's own loader, off-line (HF_HUB_OFFLINE=1), from the same cache
    theirs = timm.create_model("test_resnet", pretrained=True, num_classes=4, cache_dir=str(hub_cache.root))
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert ours_sd.keys() == theirs_sd.keys()
    assert all(torch.equal(ours_sd[k], theirs_sd[k]) for k in ours_sd)
    backbone = [k for k in source.state_dict() if not k.startswith("fc.")]
    assert all(torch.equal(ours_sd[k], source.state_dict()[k]) for k in backbone)
    assert ours_sd["fc.weight"].shape == (4, source.state_dict()["fc.weight"].shape[1])
    assert ours.pretrained_cfg["state_dict"] is None  # no second copy of the weights kept on the model


def test_resolved_hub_weights_record_hub_id_commit_file_and_hash(hub_cache):
    path, _ = hub_cache.add("test_resnet")
    source = resolve_weights(ModelConfig(name="test_resnet", pretrained="hub"))
    assert source.kind == "hub" and source.hf_hub_id == TEST_RESNET_HUB_ID
    assert source.filename == "model.safetensors" and source.revision == path.parent.name
    assert source.path == str(path) and source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    status = describe_pretrained("test_resnet", "hub")
    assert status.availability == "cached" and status.usable and status.path == str(path)
    assert status.input_size == (3, 160, 160) and status.mean == (0.5, 0.5, 0.5) and status.std == (0.5, 0.5, 0.5)


def test_offline_and_not_cached_is_refused_naming_model_hub_id_cache_and_the_ways_out(hub_cache):
    cfg = ModelConfig(name="test_resnet", pretrained="hub")
    with pytest.raises(ConfigError) as info:
        resolve_weights(cfg, environ={"HF_HUB_CACHE": str(hub_cache.root), USER_VALUE_VAR: ""})
    message = str(info.value)
    for part in ("'test_resnet'", TEST_RESNET_HUB_ID, str(hub_cache.root), "'model.allow_download' is false",
                 "allow downloads", "--allow-download", "local weights file in 'model.pretrained'"):
        assert part in message, part
    status = describe_pretrained("test_resnet", "hub", environ={"HF_HUB_CACHE": str(hub_cache.root)})
    assert status.availability == "missing" and not status.usable and TEST_RESNET_HUB_ID in status.message


def test_the_users_hf_hub_offline_always_wins(hub_cache):
    cfg = ModelConfig(name="test_resnet", pretrained="hub", allow_download=True)
    env = {"HF_HUB_CACHE": str(hub_cache.root)}
    with pytest.raises(ConfigError, match=r"HF_HUB_OFFLINE=1 is set in your environment.*unset HF_HUB_OFFLINE"):
        resolve_weights(cfg, environ={**env, USER_VALUE_VAR: "1"})
    pending = resolve_weights(cfg, environ={**env, USER_VALUE_VAR: ""})  # the engine's own HF_HUB_OFFLINE=1 does not
    assert pending.kind == "hub" and pending.hf_hub_id == TEST_RESNET_HUB_ID and pending.path is None
    assert describe_pretrained("test_resnet", "hub", True, environ={**env, USER_VALUE_VAR: ""}).availability == (
        "would download")


def test_a_permitted_download_is_fetched_by_the_job_and_recorded_in_the_run(hub_cache, tiny_config, workspace,
                                                                              monkeypatch):
    import huggingface_hub
    from timm.models import _hub as timm_hub

    calls = []

    def fake_download(repo_id, filename, **kwargs):  # what the hub would put in the cache
        calls.append((repo_id, filename, kwargs["cache_dir"], kwargs["revision"]))
        path, _ = hub_cache.add("test_resnet")
        return str(path)

    monkeypatch.setenv(USER_VALUE_VAR, "")  # the user did not set HF_HUB_OFFLINE
    monkeypatch.setattr(timm_hub, "hf_hub_download", fake_download)  # timm's download path for hub weights
    configs = load_run_configs(tiny_config(**{"model.pretrained": "hub", "model.allow_download": True}))
    (run_dir,) = create_runs(configs, workspace=workspace)
    assert read_config(run_dir).model.weights_source.path is None and not calls  # nothing fetched at creation
    # A job started with HF_HUB_OFFLINE=1 cannot download: said plainly, not as a hub error.
    with pytest.raises(RunError, match="engine.offline.job_env"):
        fetch_pending_weights(run_dir, read_config(run_dir))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the job_env of a run that may download
    cfg = fetch_pending_weights(run_dir, read_config(run_dir))
    assert calls == [(TEST_RESNET_HUB_ID, "model.safetensors", str(hub_cache.root), None)]
    stored = read_config(run_dir).model.weights_source
    assert stored == cfg.model.weights_source and stored.path and stored.sha256 and stored.filename == "model.safetensors"


def test_a_weights_file_changed_after_creation_is_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in timm.create_model("test_resnet").state_dict().items()}, str(path))
    cfg = ModelConfig(name="test_resnet", pretrained=str(path))
    cfg = cfg.model_copy(update={"weights_source": resolve_weights(cfg)})
    assert weights_to_load(cfg)[0] == path
    save_file({k: v.contiguous() + 1 for k, v in timm.create_model("test_resnet").state_dict().items()}, str(path))
    with pytest.raises(ConfigError, match="changed since the run was created"):
        weights_to_load(cfg)


@pytest.mark.slow
def test_training_with_hub_weights_starts_every_fold_model_from_the_cached_weights(hub_cache, tiny_config, workspace,
                                                                                   demo_dataset, monkeypatch):
    import engine.training.fit as fit

    path, source = hub_cache.add("test_resnet", seed=7)
    (run_dir,) = create_runs(load_run_configs(tiny_config(**{"model.pretrained": "hub", "split.k": 2})),
                             workspace=workspace)
    recorded = read_config(run_dir).model.weights_source
    assert (recorded.kind, recorded.hf_hub_id, recorded.path) == ("hub", TEST_RESNET_HUB_ID, str(path))
    started = []

    def capture(model_cfg, num_classes):  # the fold model as training receives it, before any step
        model = create_model(model_cfg, num_classes)
        started.append(copy.deepcopy(model))
        return model

    monkeypatch.setattr(fit, "create_model", capture)
    with pytest.raises(fit.Cancelled):
        fit.train_run(run_dir, folds=[0], should_stop=lambda: bool(started))
    images = demo_batch(demo_dataset)
    assert torch.equal(pre_logits(started[0], images), pre_logits(source, images))
    scratch = create_model(ModelConfig(name="test_resnet"), num_classes=10)
    assert not torch.allclose(pre_logits(scratch, images), pre_logits(source, images))  # the check can fail


def test_a_launch_builds_the_model_once(tiny_config, workspace, monkeypatch):
    built = []
    original = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: built.append(a[0]) or original(*a, **k))
    create_runs(load_run_configs(tiny_config(image_size=None)), workspace=workspace)
    assert built == ["test_resnet"]  # the check; image size and data config come from timm's pretrained config


def test_old_pretrained_file_configs_still_load(tmp_path, tiny_config, workspace):
    path = tmp_path / "w.pth"
    torch.save(timm.create_model("test_resnet", num_classes=3).state_dict(), path)
    (cfg,) = load_run_configs(tiny_config(**{"model.pretrained_file": str(path)}))
    assert cfg.model.pretrained == str(path)
    assert load_run_configs(tiny_config(**{"model.pretrained_file": None}))[0].model.pretrained == "none"
    with pytest.raises(ConfigError, match="'model.pretrained_file'.*old name of 'model.pretrained'"):
        load_run_configs(tiny_config(model={"name": "test_resnet", "pretrained_file": str(path), "pretrained": "hub"}))
    (run_dir,) = create_runs([cfg], workspace=workspace)
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]
    assert "pretrained_file" not in stored and stored["pretrained"] == str(path)
    assert stored["weights_source"]["kind"] == "file"
    assert stored["weights_source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("value, expected", [(None, "none"), (False, "none"), (True, "hub"), (" HUB ", "hub"),
                                             ("", "none"), ("None", "none")])
def test_pretrained_values_a_user_may_write(value, expected):
    assert ModelConfig(pretrained=value).pretrained == expected


def test_local_file_and_model_without_weights_statuses(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"x")
    assert describe_pretrained("test_resnet", str(path)).availability == "local file"
    missing = describe_pretrained("test_resnet", str(tmp_path / "nope.pth"))
    assert missing.availability == "missing" and "does not exist" in missing.message
    assert describe_pretrained("test_resnet", "none").availability == "none"
    with pytest.raises(ConfigError, match=re.escape("'model.name'")):
        describe_pretrained("resnet1B", "hub")


@pytest.mark.slow
def test_a_foreground_train_fetches_in_a_child_with_the_jobs_environment(hub_cache, tiny_config, workspace, tmp_path,
                                                                         monkeypatch, capsys):
    """`train --allow-download` without --detach: this process stays off-line, the download happens in a child
    process whose environment allows it. The hub here is a closed port on 127.0.0.1, so the child's download fails
    — and the run says why, instead of "this process runs with HF_HUB_OFFLINE=1"."""
    from engine.cli import main
    from engine.runs import read_status

    monkeypatch.setenv(USER_VALUE_VAR, "")  # the user did not set HF_HUB_OFFLINE
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: no network leaves the machine
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "2")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_config(**{"model.pretrained": "hub"})))
    assert main(["train", str(config), "--allow-download", "--workspace", str(workspace)]) == 1
    (run_id,) = capsys.readouterr().out.split()
    status = read_status(workspace / "runs" / run_id)
    assert status["state"] == "failed" and "HF_HUB_OFFLINE" not in status["error"], status["error"]
    assert TEST_RESNET_HUB_ID in status["error"] or "127.0.0.1" in status["error"], status["error"]
    assert all(f["state"] == "queued" for f in status["folds"].values())  # nothing trained without its weights
