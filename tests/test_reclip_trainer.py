"""ReCLIP training-loop mechanics on a tiny random CLIP: outputs, LayerNorm-only updates,
checkpoint/resume reproducibility. (Adaptation quality is tested end to end separately.)"""
import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from clipadapt.clip import DatasetPrompts, load_clip, register_model_config
from clipadapt.reclip import ReCLIP, ReCLIPConfig, ReCLIPResult
from clipadapt.reclip.branches import layer_norm_parameters

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
CLASSES = ["red", "green", "blue"]
TEMPLATES = ["a photo of {}.", "a {} image."]
PROMPTS = DatasetPrompts("colours", CLASSES, TEMPLATES)


class ColourPatches(torch.utils.data.Dataset):
    """120 noisy 32x32 images whose dominant channel is the class."""

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.labels = torch.arange(120) % 3
        self.images = torch.rand(120, 3, 32, 32, generator=generator) * 0.5
        self.images[torch.arange(120), self.labels] += 0.5

    def __len__(self):
        return 120

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])


@pytest.fixture(scope="module")
def tiny_clip():
    register_model_config("clipadapt-reclip-tiny", TINY)
    torch.manual_seed(0)
    return load_clip("clipadapt-reclip-tiny")


def run(tiny_clip, out, epochs, resume=False):
    config = ReCLIPConfig(epochs=epochs, batch_size=32, k=10, lr_visual=0.05, lr_text=0.05, empty_centroid="text")
    return ReCLIP(tiny_clip, PROMPTS, config).fit(ColourPatches(), out_dir=out, resume=resume, progress=False)


def test_fit_writes_result_plot_and_checkpoint(tiny_clip, tmp_path):
    result = run(tiny_clip, tmp_path, epochs=2)
    assert isinstance(result, ReCLIPResult) and [r.epoch for r in result.history] == [0, 1]
    stored = json.loads((tmp_path / "result.json").read_text())
    assert stored == json.loads(json.dumps(result.to_dict()))
    assert (stored["method"], stored["classes"], stored["config"]["k"]) == ("ReCLIP", 3, 10)
    assert stored["best_epoch_accuracy"] == max(r["accuracy_combined"] for r in stored["history"])
    assert set(stored["final_accuracy"]) == {"text", "visual", "combined"}
    assert {"evaluate", "label_propagation", "train"} <= set(stored["history"][0]["seconds"])
    for record in stored["history"]:
        for key in ("accuracy_text", "accuracy_visual", "accuracy_combined", "agreement"):
            assert 0.0 <= record[key] <= 100.0
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert (tmp_path / "checkpoint.pt").is_file()


def test_only_layer_norms_train(tiny_clip, tmp_path):
    trainer = ReCLIP(tiny_clip, PROMPTS,
                     ReCLIPConfig(epochs=1, batch_size=32, k=10, lr_visual=0.5, lr_text=0.5, empty_centroid="text"))
    trainer.fit(ColourPatches(), progress=False)
    original = tiny_clip.model.state_dict()
    for branch, trained_part in ((trainer.visual_model, trainer.visual_model.visual),
                                 (trainer.text_model, trainer.text_model.transformer)):
        trainable = {id(p) for p in layer_norm_parameters(trained_part)} | {id(p) for p in branch.ln_final.parameters()}
        for name, parameter in branch.named_parameters():
            if id(parameter) not in trainable:
                assert torch.equal(parameter, original[name]), f"{name} changed but is not a trained LayerNorm"
    changed = [n for n, p in trainer.visual_model.named_parameters() if not torch.equal(p, original[n])]
    assert changed and all(".ln" in n or n.startswith("visual.ln") for n in changed)


def test_branches_share_the_frozen_weights_and_leave_the_model_unchanged(tiny_clip):
    before = {name: tensor.clone() for name, tensor in tiny_clip.model.state_dict().items()}
    trainer = ReCLIP(tiny_clip, PROMPTS,
                     ReCLIPConfig(epochs=1, batch_size=32, k=10, lr_visual=0.5, lr_text=0.5, empty_centroid="text"))
    trainer.fit(ColourPatches(), progress=False)
    model = tiny_clip.model
    assert trainer.visual_model.visual.conv1.weight is model.visual.conv1.weight
    assert trainer.visual_model.token_embedding.weight is model.token_embedding.weight
    assert trainer.text_model.visual.conv1.weight is model.visual.conv1.weight
    assert trainer.visual_model.visual.ln_post.weight is not model.visual.ln_post.weight
    assert trainer.text_model.ln_final.weight is not model.ln_final.weight
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), f"{name} of the original model changed"


def test_checkpoint_holds_only_the_trained_layer_norms(tiny_clip, tmp_path):
    trainer = ReCLIP(tiny_clip, PROMPTS, ReCLIPConfig(epochs=1, batch_size=32, k=10, empty_centroid="text"))
    trainer.fit(ColourPatches(), out_dir=tmp_path, progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    for key, branch in (("visual_model", trainer.visual_model), ("text_model", trainer.text_model)):
        trained = {name for name, parameter in branch.named_parameters() if parameter.requires_grad}
        assert set(state[key]) == trained and all(".ln" in name or "ln_" in name for name in trained)
    model_bytes = sum(t.numel() * t.element_size() for t in tiny_clip.model.state_dict().values())
    assert (tmp_path / "checkpoint.pt").stat().st_size < 0.05 * model_bytes


def test_resume_refuses_a_checkpoint_of_another_model(tiny_clip, tmp_path):
    run(tiny_clip, tmp_path, epochs=1)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    state["visual_model"].popitem()
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="resume: the checkpoint's trained parameters do not match"):
        run(tiny_clip, tmp_path, epochs=2, resume=True)


@pytest.mark.parametrize("rule, first_prompts", [
    ("released", ["a photo of ['red', 'crimson'].", "a photo of ['green'].", "a photo of ['blue']."]),
    ("first", ["a photo of red.", "a photo of green.", "a photo of blue."])])
def test_class_synonyms(tiny_clip, rule, first_prompts):
    from clipadapt.clip.encode import encode_texts

    prompts = DatasetPrompts("colours", CLASSES, TEMPLATES, synonyms=(("red", "crimson"), ("green",), ("blue",)))
    trainer = ReCLIP(tiny_clip, prompts, ReCLIPConfig(synonym_prompt=rule))
    trainer._setup()
    assert trainer.first_prompts == first_prompts
    prompts = ["a photo of red.", "a photo of crimson.", "a red image.", "a crimson image."]
    expected = torch.nn.functional.normalize(encode_texts(tiny_clip, prompts).mean(0), dim=0)
    torch.testing.assert_close(trainer.initial_text[0], expected)


def test_resume_continues_exactly(tiny_clip, tmp_path):
    straight = run(tiny_clip, tmp_path / "straight", epochs=3)
    run(tiny_clip, tmp_path / "interrupted", epochs=1)
    resumed = run(tiny_clip, tmp_path / "interrupted", epochs=3, resume=True)
    def without_timings(history):
        return [{key: value for key, value in asdict(record).items() if key != "seconds"} for record in history]

    assert without_timings(resumed.history) == without_timings(straight.history)
    assert resumed.final_accuracy == straight.final_accuracy


def test_numpy_scalars_in_the_config_are_python_numbers():
    config = ReCLIPConfig(epochs=np.int64(1), batch_size=np.int32(32), k=np.uint8(10), alpha=np.float32(0.5))
    assert (type(config.epochs), type(config.batch_size), type(config.k), type(config.alpha)) == (int, int, int, float)
    assert config.alpha == 0.5


def test_bad_configuration():
    with pytest.raises(ValueError, match="prompts: need at least 2 classes, got 1"):
        ReCLIP(None, DatasetPrompts("one", ["only"], TEMPLATES))
    with pytest.raises(TypeError, match="prompts: expected a clipadapt.clip.DatasetPrompts"):
        ReCLIP(None, CLASSES)
