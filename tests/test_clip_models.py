"""open_clip loading: local weight files the test writes, custom configs, offline errors."""
import os
import subprocess
import sys

import pytest
import torch

from clipadapt.clip import load_clip, register_model_config

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_model():
    register_model_config("clipadapt-test-tiny", TINY)
    torch.manual_seed(0)
    return load_clip("clipadapt-test-tiny")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_weights_file_round_trip(tiny_model, tmp_path, suffix):
    path = tmp_path / f"tiny{suffix}"
    state = tiny_model.model.state_dict()
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({name: tensor.contiguous() for name, tensor in state.items()}, str(path))
    else:
        torch.save(state, path)
    loaded = load_clip("clipadapt-test-tiny", weights=path)
    assert loaded.weights == str(path)
    for name, tensor in loaded.model.state_dict().items():
        torch.testing.assert_close(tensor, state[name], msg=name)


def activations(model):
    """The set of activation module types in the towers' MLPs."""
    from open_clip.transformer import QuickGELU

    return {type(m).__name__ for m in model.modules() if isinstance(m, (torch.nn.GELU, QuickGELU))}


class OpenAIArchive(torch.nn.Module):
    """A CLIP holding the extra entries of OpenAI's checkpoints, as its TorchScript archives do."""

    def __init__(self, clip):
        super().__init__()
        for name, child in clip.named_children():
            self.add_module(name, child)
        for name, parameter in clip.named_parameters(recurse=False):
            self.register_parameter(name, parameter)
        for key, value in (("input_resolution", 32), ("context_length", 77), ("vocab_size", 49408)):
            self.register_buffer(key, torch.tensor(value))

    def forward(self, x):
        return x * self.logit_scale


@pytest.fixture(scope="module")
def openai_clip():
    """The tiny model built as OpenAI's CLIP is, with QuickGELU."""
    register_model_config("clipadapt-test-tiny", TINY)
    torch.manual_seed(1)
    return load_clip("clipadapt-test-tiny", quick_gelu=True)


def test_default_activation_is_the_configs(tiny_model):
    assert tiny_model.activation == "gelu" and activations(tiny_model.model) == {"GELU"}
    assert tiny_model.identity() == {"architecture": "clipadapt-test-tiny", "weights": "random", "activation": "gelu"}


@pytest.mark.parametrize("layout", ["state_dict", "torchscript"])
def test_openai_checkpoint_comes_back_with_quick_gelu(openai_clip, tmp_path, layout):
    assert activations(openai_clip.model) == {"QuickGELU"}
    archive = OpenAIArchive(openai_clip.model)
    path = tmp_path / "ViT-tiny.pt"
    if layout == "torchscript":
        torch.jit.trace(archive, torch.ones(1)).save(str(path))
    else:
        torch.save(archive.state_dict(), path)
    loaded = load_clip("clipadapt-test-tiny", weights=path)
    assert loaded.activation == "quickgelu" and activations(loaded.model) == {"QuickGELU"}
    tokens = openai_clip.tokenizer(["a photo of a cat."])
    images = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.encode_text(tokens), openai_clip.model.encode_text(tokens))
        torch.testing.assert_close(loaded.model.encode_image(images), openai_clip.model.encode_image(images))
    forced = load_clip("clipadapt-test-tiny", weights=path, quick_gelu=False)
    assert forced.activation == "gelu" and activations(forced.model) == {"GELU"}


def test_file_from_an_openai_hub_folder_gets_quick_gelu(openai_clip, tmp_path):
    folder = tmp_path / "models--timm--vit_tiny_clip.openai" / "snapshots" / "0"
    folder.mkdir(parents=True)
    torch.save(openai_clip.model.state_dict(), folder / "open_clip_pytorch_model.bin")
    assert load_clip("clipadapt-test-tiny", weights=folder / "open_clip_pytorch_model.bin").activation == "quickgelu"
    torch.save(openai_clip.model.state_dict(), tmp_path / "elsewhere.bin")
    assert load_clip("clipadapt-test-tiny", weights=tmp_path / "elsewhere.bin").activation == "gelu"
    assert load_clip("clipadapt-test-tiny", weights=tmp_path / "elsewhere.bin", quick_gelu=True).activation == \
        "quickgelu"


@pytest.mark.parametrize("tag, quick_gelu", [("openai", True), ("laion2b_s34b_b79k", False)])
def test_pretrained_tag_sets_the_activation_it_was_trained_with(tiny_model, monkeypatch, tag, quick_gelu):
    import open_clip

    built = {}

    def create(architecture, **options):  # no download: record what would be built
        built.update(options)
        return tiny_model.model, None, tiny_model.preprocess

    monkeypatch.setattr(open_clip, "create_model_and_transforms", create)
    loaded = load_clip("ViT-B-32", pretrained=tag)
    assert built["quick_gelu"] is quick_gelu and built["force_quick_gelu"] is quick_gelu
    assert loaded.activation == ("quickgelu" if quick_gelu else "gelu")
    assert load_clip("ViT-B-32", pretrained=tag, quick_gelu=not quick_gelu).activation != loaded.activation


def test_tiny_model_encodes(tiny_model):
    images = torch.randn(2, 3, 32, 32)
    tokens = tiny_model.tokenizer(["a photo of a cat.", "a photo of a dog."])
    with torch.no_grad():
        assert tiny_model.model.encode_image(images).shape == (2, 32)
        assert tiny_model.model.encode_text(tokens).shape == (2, 32)


def test_missing_or_wrong_weights_file(tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="weights: no file at"):
        load_clip("clipadapt-test-tiny", weights=tmp_path / "absent.pt")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="suffix"):
        load_clip("clipadapt-test-tiny", weights=tmp_path / "notes.txt")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="weights: could not load"):
        load_clip("clipadapt-test-tiny", weights=tmp_path / "broken.pt")


def test_pretrained_tag_offline_gives_a_clear_error():
    # huggingface_hub reads HF_HUB_OFFLINE when imported, so run as a user would: a fresh process.
    code = "from clipadapt.clip import load_clip; load_clip('ViT-B-32', pretrained='openai')"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "RuntimeError: pretrained: weights 'openai' for ViT-B-32 are not available here" in done.stderr
    assert "weights=PATH" in done.stderr


def test_unknown_architecture_and_conflicting_sources():
    with pytest.raises(ValueError, match="close matches"):
        load_clip("ViT-L-15")
    with pytest.raises(ValueError, match="one or the other"):
        load_clip("ViT-B-32", pretrained="openai", weights="x.pt")


def write_image_folder(root, classes=("cat", "dog"), per_class=3):
    from PIL import Image

    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for item in range(per_class):
            pixels = (torch.rand(40, 40, 3, generator=torch.Generator().manual_seed(index * 10 + item)) * 255)
            Image.fromarray(pixels.byte().numpy()).save(root / name / f"{item}.png")


def test_image_folder_features_are_cached(tiny_model, tmp_path, monkeypatch):
    from clipadapt.clip.data import image_features, load_target

    write_image_folder(tmp_path / "images")
    dataset = load_target(tmp_path / "images", transform=tiny_model.preprocess)
    assert dataset.classes == ["cat", "dog"]
    features, labels = image_features(tiny_model, dataset, dataset_id="folder", batch_size=4,
                                      cache_dir=tmp_path / "cache", progress=False)
    assert features.shape == (6, 32) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    torch.testing.assert_close(features.norm(dim=1), torch.ones(6))
    monkeypatch.setattr(tiny_model.model, "encode_image", lambda images: pytest.fail("cache not used"))
    again, _ = image_features(tiny_model, dataset, dataset_id="folder", cache_dir=tmp_path / "cache", progress=False)
    torch.testing.assert_close(again, features)


def test_feature_cache_key_names_the_activation(tiny_model, tmp_path):
    from dataclasses import replace

    from clipadapt.clip.data import cache_path

    quick = replace(tiny_model, activation="quickgelu")
    assert cache_path(tmp_path, quick, "folder", 6) != cache_path(tmp_path, tiny_model, "folder", 6)


def test_unknown_or_missing_dataset(tmp_path):
    from clipadapt.clip.data import load_target

    with pytest.raises(ValueError, match="neither an image folder"):
        load_target("not-a-dataset")
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_target("cifar10", root=tmp_path)
