"""``clipadapt reclip``: adapt a CLIP model to a target dataset from the command line."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from clipadapt.commands.models import (add_amp_argument, add_model_arguments, amp_from_arguments,
                                       load_model_from_arguments)

log = logging.getLogger(__name__)


def add_arguments(reclip: argparse.ArgumentParser) -> None:
    """Give ``clipadapt reclip`` its options; its default ``run(args) -> exit code`` runs it."""
    reclip.add_argument("--dataset", required=True,
                        help="an image folder (class_name/image.jpg) or a dataset key, e.g. cifar10, imagenet")
    reclip.add_argument("--root", default="data", help="where the keyed datasets are stored")
    reclip.add_argument("--split", default=None, help="split of a keyed dataset (default: the released evaluation's, "
                        "e.g. sun397 test = Testing_01.txt, fer2013 public_test)")
    reclip.add_argument("--download", action="store_true", help="download a torchvision dataset (needs internet)")
    reclip.add_argument("--prompts", choices=("released", "clip"), default="released",
                        help="class names and templates: ReCLIP's released ones, or CLIP's where they differ")
    reclip.add_argument("--prompt-dataset", default=None,
                        help="for an image folder: the dataset key whose prompts it takes (default: the dataset its "
                        "class folder names match, e.g. ImageNet wnids, else the folder names)")
    add_model_arguments(reclip)
    reclip.add_argument("--out", required=True, help="run directory: checkpoint.pt, result.json, curves.png")
    reclip.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    reclip.add_argument("--epochs", type=int, default=None, help="default: min(100, int(N/5000 + 2))")
    reclip.add_argument("--batch-size", type=int, default=64)
    reclip.add_argument("--lr-visual", type=float, default=1e-3)
    reclip.add_argument("--lr-text", type=float, default=1e-3)
    reclip.add_argument("--k", type=int, default=20, help="neighbours of the label-propagation graph")
    reclip.add_argument("--cut-dim", type=int, default=None,
                        help="text-subspace directions kept (+1) by the projection; default 768, or 250 above 500 "
                        "classes (the released code's comment; its runnable default is 768 for every dataset)")
    reclip.add_argument("--visual-loss", choices=("released", "mean"), default="released",
                        help="released: keep the released code's extra 1/B in the V loss")
    reclip.add_argument("--empty-centroid", choices=("nan", "text"), default="nan",
                        help="V classifier row of a class no node is predicted as")
    reclip.add_argument("--synonym-prompt", choices=("released", "first"), default="released",
                        help="ReCLIP-T's prompt of a class with synonyms (FER2013): the Python list as released, or "
                        "the first synonym")
    reclip.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    add_amp_argument(reclip, released="a float16 model")
    reclip.add_argument("--feature-cache", default=None,
                        help="directory caching the frozen image features across runs (keyed by model, weights, "
                        "dataset)")
    reclip.add_argument("--seed", type=int, default=0)
    reclip.add_argument("--workers", type=int, default=0, help="data-loading processes")
    reclip.set_defaults(run=run_reclip)


def run_reclip(args: argparse.Namespace) -> int:
    """Load the model and the dataset, adapt, print the summary; 0 on success."""
    from clipadapt.clip.data import TARGETS, load_target
    from clipadapt.clip.prompts import get_prompts, prompts_for_folder
    from clipadapt.reclip.trainer import ReCLIP, ReCLIPConfig

    logging.basicConfig(level=logging.INFO, format="[clipadapt reclip] %(message)s")
    folder = Path(args.dataset).is_dir()
    if args.prompt_dataset and not folder:
        raise ValueError(f"--prompt-dataset: applies to an image folder; {args.dataset!r} takes its own prompts")
    clip = load_model_from_arguments(args, device=args.device)
    dataset = load_target(args.dataset, root=args.root, transform=clip.preprocess, download=args.download,
                          split=args.split)
    if folder:
        prompts = prompts_for_folder(dataset.classes, variant=args.prompts, dataset=args.prompt_dataset)
        log.info("prompts: %s (%d classes, %d templates)", prompts.name, prompts.num_classes, len(prompts.templates))
    else:
        prompts = get_prompts(args.dataset, args.prompts)
    config = ReCLIPConfig(epochs=args.epochs, batch_size=args.batch_size, lr_visual=args.lr_visual,
                          lr_text=args.lr_text, k=args.k, cut_dim=args.cut_dim, visual_loss=args.visual_loss,
                          empty_centroid=args.empty_centroid, synonym_prompt=args.synonym_prompt,
                          amp=amp_from_arguments(args), feature_cache=args.feature_cache, seed=args.seed,
                          device=args.device, num_workers=args.workers)
    dataset_id = str(Path(args.dataset).resolve()) if folder else \
        f"{args.dataset}:{args.split or next(iter(TARGETS[args.dataset]))}@{args.root}"
    result = ReCLIP(clip, prompts, config).fit(
        dataset, out_dir=args.out, resume=args.resume, dataset_id=dataset_id)
    print(json.dumps({key: getattr(result, key) for key in ("zero_shot_accuracy", "best_epoch_accuracy", "best_epoch",
                                                   "final_accuracy")}, indent=2))
    print(f"result: {Path(args.out) / 'result.json'}, curves: {Path(args.out) / 'curves.png'}")
    return 0
