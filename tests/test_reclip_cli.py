"""`clipadapt reclip` on a local weights file and an image folder, as a user runs it offline."""
import json

import torch

from clipadapt.cli import main
from clipadapt.clip import load_clip, register_model_config

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def test_reclip_command_on_weights_file_and_image_folder(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    register_model_config("clipadapt-cli-tiny", TINY)
    torch.manual_seed(0)
    torch.save(load_clip("clipadapt-cli-tiny").model.state_dict(), tmp_path / "tiny.pt")
    for label, name in enumerate(["red_square", "green_square", "blue_square"]):
        (tmp_path / "images" / name).mkdir(parents=True)
        for item in range(12):
            pixels = torch.rand(36, 36, 3, generator=torch.Generator().manual_seed(label * 100 + item)) * 120
            pixels[..., label] += 120
            Image.fromarray(pixels.byte().numpy()).save(tmp_path / "images" / name / f"{item}.png")
    argv = ["reclip", "--dataset", str(tmp_path / "images"), "--model", "clipadapt-cli-tiny",
            "--model-config", str(tmp_path / "tiny.json"), "--weights", str(tmp_path / "tiny.pt"),
            "--out", str(tmp_path / "run"), "--epochs", "2", "--batch-size", "16", "--empty-centroid", "text",
            "--feature-cache", str(tmp_path / "cache")]
    assert main(argv) == 0
    summary = capsys.readouterr().out
    assert "best_epoch_accuracy" in summary and "result.json" in summary
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["classes"] == 3 and len(result["history"]) == 2
    assert (result["weights"], result["activation"]) == (str(tmp_path / "tiny.pt"), "gelu")
    assert (tmp_path / "run" / "curves.png").is_file() and (tmp_path / "run" / "checkpoint.pt").is_file()
    assert len(list((tmp_path / "cache").glob("features-*.npz"))) == 1
    assert main(argv + ["--resume"]) == 0  # everything done already: resumes past the last epoch
