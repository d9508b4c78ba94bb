"""``clipadapt reclip``: adapt a CLIP model to a target dataset from the command line."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from clipadapt.commands.models import add_model_arguments, load_model_from_arguments


def add_reclip_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``clipadapt reclip``; its parser's default ``run(args) -> exit code`` runs it."""
    reclip = commands.add_parser(
        "reclip", help="ReCLIP source-free adaptation of a CLIP model to an unlabelled target dataset",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    reclip.add_argument("--dataset", required=True,
                        help="an image folder (class_name/image.jpg) or a torchvision dataset key, e.g. cifar10")
    reclip.add_argument("--root", default="data", help="where torchvision datasets are stored")
    reclip.add_argument("--download", action="store_true", help="download a torchvision dataset (needs internet)")
    add_model_arguments(reclip)
    reclip.add_argument("--out", required=True, help="run directory: checkpoint.pt, result.json, curves.png")
    reclip.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    reclip.add_argument("--epochs", type=int, default=None, help="default: min(100, int(N/5000 + 2))")
    reclip.add_argument("--batch-size", type=int, default=64)
    reclip.add_argument("--lr-visual", type=float, default=1e-3)
    reclip.add_argument("--lr-text", type=float, default=1e-3)
    reclip.add_argument("--visual-loss", choices=("released", "mean"), default="released",
                        help="released: keep the released code's extra 1/B in the V loss")
    reclip.add_argument("--empty-centroid", choices=("nan", "text"), default="nan",
                        help="V classifier row of a class no node is predicted as")
    reclip.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    reclip.add_argument("--amp", choices=("fp16", "bf16"), default=None, help="autocast on the GPU")
    reclip.add_argument("--feature-cache", default=None,
                        help="directory caching the frozen image features across runs (keyed by model, weights, dataset)")
    reclip.add_argument("--seed", type=int, default=0)
    reclip.add_argument("--workers", type=int, default=0, help="data-loading processes")
    reclip.set_defaults(run=run_reclip)


def run_reclip(args: argparse.Namespace) -> int:
    """Load the model and the dataset, adapt, print the summary; 0 on success."""
    from clipadapt.clip.data import load_target
    from clipadapt.clip.prompts import from_folder, get_prompts
    from clipadapt.reclip.trainer import ReCLIP, ReCLIPConfig

    logging.basicConfig(level=logging.INFO, format="[clipadapt reclip] %(message)s")
    clip = load_model_from_arguments(args, device=args.device)
    dataset = load_target(args.dataset, root=args.root, transform=clip.preprocess, download=args.download)
    prompts = from_folder(dataset.classes) if Path(args.dataset).is_dir() else get_prompts(args.dataset)
    config = ReCLIPConfig(epochs=args.epochs, batch_size=args.batch_size, lr_visual=args.lr_visual,
                          lr_text=args.lr_text, visual_loss=args.visual_loss, empty_centroid=args.empty_centroid,
                          amp=args.amp, feature_cache=args.feature_cache, seed=args.seed, device=args.device,
                          num_workers=args.workers)
    dataset_id = f"{Path(args.dataset).resolve()}" if Path(args.dataset).is_dir() else f"{args.dataset}@{args.root}"
    result = ReCLIP(clip, prompts.classnames, prompts.templates, config).fit(dataset, out_dir=args.out,
                                                                             resume=args.resume, dataset_id=dataset_id)
    print(json.dumps({key: result[key] for key in ("zero_shot_accuracy", "best_epoch_accuracy", "best_epoch",
                                                   "final_accuracy")}, indent=2))
    print(f"result: {Path(args.out) / 'result.json'}, curves: {Path(args.out) / 'curves.png'}")
    return 0
