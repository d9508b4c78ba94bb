"""`clipadapt reclip` on a local weights file and an image folder, as a user runs it offline."""
import json

import pytest
import torch

from clipadapt.cli import main
from clipadapt.clip import load_clip, register_model_config

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def write_folder(root, class_folders, per_class=12):
    from PIL import Image

    for label, name in enumerate(class_folders):
        (root / name).mkdir(parents=True)
        for item in range(per_class):
            pixels = torch.rand(36, 36, 3, generator=torch.Generator().manual_seed(label * 100 + item)) * 120
            pixels[..., label % 3] += 120
            Image.fromarray(pixels.byte().numpy()).save(root / name / f"{item}.png")


@pytest.fixture
def model_options(tmp_path):
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    register_model_config("clipadapt-cli-tiny", TINY)
    torch.manual_seed(0)
    torch.save(load_clip("clipadapt-cli-tiny").model.state_dict(), tmp_path / "tiny.pt")
    return ["--model", "clipadapt-cli-tiny", "--model-config", str(tmp_path / "tiny.json"), "--weights",
            str(tmp_path / "tiny.pt")]


def test_reclip_command_on_weights_file_and_image_folder(tmp_path, capsys, model_options):
    write_folder(tmp_path / "images", ["red_square", "green_square", "blue_square"])
    argv = ["reclip", "--dataset", str(tmp_path / "images"), *model_options,
            "--out", str(tmp_path / "run"), "--epochs", "2", "--batch-size", "16", "--empty-centroid", "text",
            "--feature-cache", str(tmp_path / "cache"), "--k", "10", "--cut-dim", "16"]
    assert main(argv) == 0
    summary = capsys.readouterr().out
    assert "best_epoch_accuracy" in summary and "result.json" in summary
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["classes"] == 3 and len(result["history"]) == 2
    assert result["classnames"] == ["blue square", "green square", "red square"]
    assert (result["config"]["k"], result["cut_dim"], result["config"]["amp"]) == (10, 16, "fp16")
    assert (result["weights"], result["activation"]) == (str(tmp_path / "tiny.pt"), "gelu")
    assert (tmp_path / "run" / "curves.png").is_file() and (tmp_path / "run" / "checkpoint.pt").is_file()
    assert len(list((tmp_path / "cache").glob("features-*.npz"))) == 1
    assert main(argv + ["--resume"]) == 0  # everything done already: resumes past the last epoch


def test_imagenet_class_folders_get_imagenets_prompts(tmp_path, model_options):
    from clipadapt.clip.prompts import imagenet_wnids

    write_folder(tmp_path / "imagenet-val", [imagenet_wnids()[label] for label in (0, 21, 999)], per_class=4)
    argv = ["reclip", "--dataset", str(tmp_path / "imagenet-val"), *model_options, "--out", str(tmp_path / "run"),
            "--epochs", "1", "--k", "5", "--prompts", "clip", "--empty-centroid", "text"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["classnames"] == ["tench", "kite (bird of prey)", "toilet paper"]
    assert len(result["templates"]) == 80 and result["templates"][0] == "a photo of a {}."


def test_k_beyond_the_graph_is_refused_before_any_work(tmp_path, model_options):
    from clipadapt.clip import DatasetPrompts
    from clipadapt.clip.data import load_target
    from clipadapt.reclip import ReCLIP, ReCLIPConfig

    write_folder(tmp_path / "images", ["red", "green"], per_class=3)
    clip = load_clip("clipadapt-cli-tiny")
    dataset = load_target(tmp_path / "images", transform=clip.preprocess)
    with pytest.raises(ValueError, match=r"config.k: the label-propagation graph has 8 nodes .* lower it "
                       r"\(clipadapt reclip --k\)"):
        ReCLIP(clip, DatasetPrompts("colours", ["red", "green"], ["a {}."]), ReCLIPConfig(k=20)).fit(dataset,
                                                                                                   progress=False)
