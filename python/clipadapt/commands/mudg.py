"""``clipadapt mudg corpus|index|retrieve|train``: the MUDG pipeline step by step.

Each step reads the previous step's directory and writes its own, so a step can be re-run or
resumed alone: corpus (embeddings of captioned images) -> index (caption->image pairing, paired
k-means, IVF lists) -> retrieve (ranked descriptors, queries, rank-vote labels, filter,
per-class selection) -> train (fine-tuning from the selection, evaluation on a target set).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from clipadapt.commands.models import (add_amp_argument, add_model_arguments, amp_from_arguments,
                                       load_model_from_arguments)

RANKING_FILE = "descriptors-ranked.txt"


def add_arguments(mudg: argparse.ArgumentParser) -> None:
    """Give ``clipadapt mudg`` its steps; each step's parser's default ``run(args) -> exit code`` runs it."""
    steps = mudg.add_subparsers(dest="step", required=True)
    _add_corpus_parser(steps)
    _add_index_parser(steps)
    _add_retrieve_parser(steps)
    _add_train_parser(steps)


def _add_corpus_parser(steps: argparse._SubParsersAction) -> None:
    corpus = steps.add_parser("corpus",
                              help="embed a folder of captioned images (captions.csv, or img2dataset's sidecar .txt "
                              "files) into a source corpus; resumes at the first unfinished shard")
    corpus.add_argument("--images", required=True, help="folder of images with their captions")
    add_model_arguments(corpus)
    corpus.add_argument("--out", required=True, help="corpus directory")
    corpus.add_argument("--batch-size", type=int, default=64)
    corpus.add_argument("--shard-rows", type=int, default=100_000, help="items per embedding shard")
    corpus.add_argument("--rebuild", action="store_true", help="discard the shards of an earlier build in --out")
    _add_run_arguments(corpus, seed=False)
    corpus.set_defaults(run=run_corpus)


def _add_index_parser(steps: argparse._SubParsersAction) -> None:
    index = steps.add_parser("index",
                             help="pair each caption with its nearest image, paired k-means in caption space, IVF "
                             "lists of every image; finished stages are kept and skipped on a re-run")
    index.add_argument("--corpus", required=True, help="corpus directory (clipadapt mudg corpus)")
    index.add_argument("--out", required=True, help="index directory")
    index.add_argument("--clusters", type=int, default=None, help="inverted lists K (default: items / 150)")
    index.add_argument("--iters", type=int, default=10, help="k-means iterations (faiss's default, as released)")
    index.add_argument("--clustering", choices=("paired", "standard"), default="paired",
                       help="paired: assign by paired image, centroids from captions; standard: image k-means")
    index.add_argument("--threads", type=int, default=None, help="CPU threads of the kernels (default: all)")
    index.add_argument("--rebuild", action="store_true", help="discard the stages of an earlier build in --out")
    _add_run_arguments(index, seed=1235, workers=False)
    index.set_defaults(run=run_index, runs_on_a_group=True)


def _add_retrieve_parser(steps: argparse._SubParsersAction) -> None:
    retrieve = steps.add_parser("retrieve",
                                help="rank descriptors, query the index with class x descriptor prompts, label by "
                                "rank vote, filter, select per class by k-means; writes selection.csv")
    retrieve.add_argument("--corpus", required=True, help="corpus directory")
    retrieve.add_argument("--index", required=True, help="index directory (clipadapt mudg index)")
    add_model_arguments(retrieve)
    _add_class_arguments(retrieve)
    retrieve.add_argument("--descriptors", default=None,
                          help="candidate descriptor clauses, one per line (' which ...'); default: the built-in list")
    retrieve.add_argument("--ranking", default=None,
                          help="use this ranked descriptor file instead of ranking the candidates")
    retrieve.add_argument("--rank-clusters", type=int, default=16, help="k-means clusters of the class prompts")
    retrieve.add_argument("--rank-repeats", type=int, default=3, help="ranking repeats (the last one is kept)")
    retrieve.add_argument("--preset", default=None, help="dataset whose released settings fill --n-descriptors "
                          "and --k-sel (clipadapt.mudg.presets; default: --dataset's, if it has one)")
    retrieve.add_argument("--n-descriptors", type=int, default=None, help="descriptors per class in the queries "
                          "(default: the preset's, else 16; the released runs use 16 for ImageNet-size label sets, 64 "
                          "for small ones)")
    retrieve.add_argument("--k", type=int, default=64, help="images retrieved per query")
    retrieve.add_argument("--nprobe", type=int, default=8, help="inverted lists probed per query")
    retrieve.add_argument("--threshold", type=float, default=0.25,
                          help="keep an image if its cosine to its label's prompt exceeds this")
    retrieve.add_argument("--k-sel", type=int, default=None, help="images kept per class (one per k-means "
                          "cluster; default: the preset's, else 96)")
    retrieve.add_argument("--out", required=True, help="selection directory")
    _add_run_arguments(retrieve, workers=False)
    retrieve.set_defaults(run=run_retrieve)


def _add_train_parser(steps: argparse._SubParsersAction) -> None:
    train = steps.add_parser("train",
                             help="fine-tune CLIP on the selection (partial towers, learnable prompt context, "
                             "soft targets from a frozen teacher, EMA) and evaluate on a target set")
    train.add_argument("--selection", required=True, help="selection directory (clipadapt mudg retrieve)")
    add_model_arguments(train)
    train.add_argument("--template", default=None, help="prompt template (default: the selection's)")
    train.add_argument("--test", default=None,
                       help="labelled target set to evaluate: an image folder or a torchvision dataset key")
    train.add_argument("--root", default="data", help="where torchvision datasets are stored")
    train.add_argument("--preset", default=None, help="dataset whose released settings fill --iterations "
                       "(default: the selection's preset, else --test's)")
    train.add_argument("--iterations", type=int, default=None, help="default: the preset's, else 200")
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=6.4e-4, help="6.4e-4 for ViT-B/16 at batch 128, 1.6e-4 for "
                       "ViT-L/14 at batch 64")
    train.add_argument("--mix", type=float, default=0.2, help="lambda: weight of the teacher in the soft target")
    train.add_argument("--n-descriptors", type=int, default=8, help="descriptors cycled in training and averaged "
                       "in evaluation")
    train.add_argument("--vision-trainable-from", type=int, default=9, help="first trainable visual block")
    train.add_argument("--text-trainable-from", type=int, default=9, help="first trainable text block")
    train.add_argument("--crop-scale", type=float, nargs=2, default=(0.08, 1.0), metavar=("LOW", "HIGH"),
                       help="area range of the RandomResizedCrop augmentation")
    train.add_argument("--no-flip", dest="flip", action="store_false", help="no random horizontal flips")
    add_amp_argument(train, released="autocast fp16 with a GradScaler")
    train.add_argument("--test-resize", choices=("bilinear", "bicubic"), default="bilinear",
                       help="interpolation of the test images' resize: bilinear as the released evaluation, or "
                       "bicubic as the model's own preprocessing")
    train.add_argument("--out", required=True, help="run directory: checkpoint.pt, result.json, curves.png")
    train.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    _add_run_arguments(train)
    train.set_defaults(run=run_train)


def _add_class_arguments(parser: argparse.ArgumentParser) -> None:
    names = parser.add_mutually_exclusive_group(required=True)
    names.add_argument("--classnames", help="file with the target's class names, one per line, in label order")
    names.add_argument("--dataset", help="a dataset key of clipadapt.clip.prompts (its class names)")
    parser.add_argument("--template", default="a photo of a {}.",
                        help="prompt template; '{}' is the class name, it starts with the learned context "
                        "('a photo of') and ends with one character (the full stop) that descriptors replace")


def _add_run_arguments(parser: argparse.ArgumentParser, *, seed: int | bool = 0, workers: bool = True) -> None:
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    if seed is not False:
        parser.add_argument("--seed", type=int, default=seed)
    if workers:
        parser.add_argument("--workers", type=int, default=0, help="data-loading processes")


def _start(step: str) -> None:
    logging.basicConfig(level=logging.INFO, format=f"[clipadapt mudg {step}] %(message)s")


def run_corpus(args: argparse.Namespace) -> int:
    """Embed ``--images`` into the corpus at ``--out``."""
    from clipadapt.mudg.corpus import build_corpus

    _start("corpus")
    clip = load_model_from_arguments(args, device=args.device)
    corpus = build_corpus(args.images, clip, args.out, batch_size=args.batch_size, shard_rows=args.shard_rows,
                          device=args.device, num_workers=args.workers, resume=not args.rebuild)
    print(f"corpus: {len(corpus)} image-caption pairs, dimension {corpus.dim}, in {args.out}")
    return 0


def run_index(args: argparse.Namespace) -> int:
    """Build (or finish building) the index of ``--corpus`` at ``--out``; under torchrun, on
    every launched rank together (clipadapt.distributed.mudg)."""
    from clipadapt.device import set_num_threads
    from clipadapt.mudg.corpus import SourceCorpus
    from clipadapt.mudg.index import build_index

    _start("index")
    if args.threads is not None:
        set_num_threads(args.threads)
    settings = dict(n_clusters=args.clusters, max_iter=args.iters, clustering=args.clustering, seed=args.seed,
                    resume=not args.rebuild)
    if os.environ.get("WORLD_SIZE"):  # launched by torchrun: every rank builds its shard (README.md)
        from clipadapt.distributed.mudg import build_index as build_on_group, process_group_from_environment

        with process_group_from_environment(args.device) as device:
            info = build_on_group(args.corpus, args.out, device=device, **settings)
        if os.environ.get("RANK", "0") == "0":
            print(json.dumps(info, indent=2))
        return 0
    index = build_index(SourceCorpus(args.corpus), args.out, device=args.device, **settings)
    print(json.dumps(index.info, indent=2))
    return 0


def run_retrieve(args: argparse.Namespace) -> int:
    """Rank the descriptors (or read a ranking), retrieve, label, filter and select; write the selection."""
    from clipadapt.clip.encode import encode_texts
    from clipadapt.mudg.augment import load_descriptors, load_ranking, rank_descriptors, save_ranking
    from clipadapt.mudg.corpus import SourceCorpus
    from clipadapt.mudg.index import MudgIndex
    from clipadapt.mudg.presets import preset_key, resolve
    from clipadapt.mudg.retrieve import retrieve_training_set

    _start("retrieve")
    preset = args.preset or (preset_key(args.dataset) if args.dataset else None)
    sizes = resolve(preset, n_descriptors=args.n_descriptors, k_sel=args.k_sel)
    corpus = SourceCorpus(args.corpus)
    index = MudgIndex.load(args.index)
    _check_index_corpus(index, corpus)
    if not 1 <= args.nprobe <= index.n_lists:  # before the minutes of descriptor ranking
        raise SystemExit(f"--nprobe: the index has {index.n_lists} lists; give 1 to {index.n_lists}, not {args.nprobe}")
    clip = load_model_from_arguments(args, device=args.device)
    _check_corpus_model(corpus, clip)
    classnames = _classnames(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def encode(texts: list[str]) -> Any:
        return encode_texts(clip, texts, device=args.device)

    if args.ranking:
        descriptors = load_ranking(args.ranking)
    else:
        ranked = rank_descriptors(encode, classnames, args.template, load_descriptors(args.descriptors),
                                  n_clusters=args.rank_clusters, repeats=args.rank_repeats, seed=args.seed)
        descriptors = ranked.descriptors
    save_ranking(out / RANKING_FILE, descriptors)
    selection = retrieve_training_set(index, corpus, encode, classnames, args.template, descriptors, k=args.k,
                                      nprobe=args.nprobe, threshold=args.threshold, seed=args.seed, **sizes)
    if not len(selection.ids):
        raise SystemExit(f"--threshold: no retrieved image passed the filter (cosine > {args.threshold}) for any "
                         "class; nothing to train on. Lower --threshold, retrieve more (--k, --nprobe) or use a "
                         "larger corpus")
    selection.parameters["preset"] = preset
    selection.write(out)
    print(json.dumps(selection.summary(), indent=2))
    print(f"selection: {out / 'selection.csv'}, ranked descriptors: {out / RANKING_FILE}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Fine-tune on the selection, evaluate on ``--test``; print the summary."""
    from clipadapt.clip.data import load_target
    from clipadapt.clip.prompts import DatasetPrompts
    from clipadapt.mudg.augment import load_ranking
    from clipadapt.mudg.retrieve import SelectedImages, load_selection
    from clipadapt.mudg.presets import preset_key, resolve
    from clipadapt.mudg.train import MUDG, MUDGConfig, evaluation_transform, training_transform

    _start("train")
    selection_dir = Path(args.selection)
    selection = load_selection(selection_dir)
    template = args.template or selection.parameters.get("template")
    if template is None:
        raise SystemExit(f"--template: {selection_dir} records no template; give one")
    clip = load_model_from_arguments(args, device=args.device)
    train_set = SelectedImages(selection_dir / "selection.csv", transform=training_transform(
        clip.preprocess, horizontal_flip=args.flip, crop_scale=tuple(args.crop_scale)))
    classnames = list(selection.classnames)
    test_set = None
    if args.test:
        test_set = load_target(args.test, root=args.root,
                               transform=evaluation_transform(clip.preprocess, interpolation=args.test_resize))
        _check_test_classes(test_set, classnames)
    preset = args.preset or selection.parameters.get("preset") or (preset_key(args.test) if args.test else None)
    config = MUDGConfig(**resolve(preset, iterations=args.iterations), batch_size=args.batch_size, lr=args.lr,
                        mix=args.mix, n_descriptors=args.n_descriptors, vision_trainable_from=args.vision_trainable_from,
                        text_trainable_from=args.text_trainable_from, amp=amp_from_arguments(args), seed=args.seed,
                        device=args.device, num_workers=args.workers)
    prompts = DatasetPrompts(selection_dir.name, classnames, (template,))
    result = MUDG(clip, prompts, load_ranking(selection_dir / RANKING_FILE), config).fit(
        train_set, test_set, out_dir=args.out, resume=args.resume)
    print(json.dumps({key: getattr(result, key) for key in ("zero_shot_accuracy", "final_accuracy")}, indent=2))
    print(f"result: {Path(args.out) / 'result.json'}, curves: {Path(args.out) / 'curves.png'}")
    return 0


def _classnames(args: argparse.Namespace) -> list[str]:
    if args.dataset:
        from clipadapt.clip.prompts import get_prompts

        return list(get_prompts(args.dataset).classnames)
    names = [line.strip() for line in Path(args.classnames).read_text().splitlines() if line.strip()]
    if len(names) < 2:
        raise SystemExit(f"--classnames: {args.classnames} holds {len(names)} names; give one class per line, "
                         "at least 2")
    return names


def _check_corpus_model(corpus: Any, clip: Any) -> None:
    """Queries must live in the corpus's embedding space: the same architecture, with the same
    activation, encoded it."""
    if corpus.model.get("architecture") != clip.architecture:
        raise SystemExit(f"--model: the corpus was embedded with {corpus.model.get('architecture')} "
                         f"({corpus.model.get('weights')}); retrieve with that model, not {clip.architecture}")
    embedded_with = corpus.model.get("activation")
    if embedded_with is None:
        logging.getLogger(__name__).warning(
            "--corpus: does not record the activation it was embedded with; the queries use %s (add \"activation\" "
            "to the model of its corpus.json to have it checked)", clip.activation)
    elif embedded_with != clip.activation:
        option = "--quick-gelu" if embedded_with == "quickgelu" else "--no-quick-gelu"
        raise SystemExit(f"--quick-gelu: the corpus was embedded with {embedded_with}, the model is built with "
                         f"{clip.activation}; pass {option}")


def _check_index_corpus(index: Any, corpus: Any) -> None:
    """The index's ids are row numbers of the corpus it was built from: another corpus, even of
    the same size, dimension and model, would give other images (or ids out of its range)."""
    if index.matches_corpus(corpus):
        return
    built_from = index.info["corpus"]
    if "fingerprint" not in built_from:
        raise SystemExit(f"--index: was built before indexes recorded the content of their corpus, so it cannot be "
                         f"checked against --corpus {corpus.path}; rebuild it (clipadapt mudg index --rebuild)")
    raise SystemExit(f"--index: was built from the corpus {built_from['path']} ({built_from['count']} items, "
                     f"dimension {built_from['dim']}, {built_from['model']}), whose content differs from --corpus "
                     f"{corpus.path} ({corpus.count} items, dimension {corpus.dim}, {corpus.model}); give the corpus "
                     "the index was built from, or build an index of this one (clipadapt mudg index)")


def _check_test_classes(test_set: Any, classnames: list[str]) -> None:
    classes = getattr(test_set, "classes", None)
    if classes is not None and len(classes) != len(classnames):
        raise SystemExit(f"--test: has {len(classes)} classes but the selection has {len(classnames)}; evaluate on "
                         "a set with the selection's class names, in the same label order")
    if classes is not None and list(classes) != classnames and sorted(classes) == sorted(classnames):
        # An image folder's labels follow its sorted folder names: another order would score the
        # predictions against the wrong labels.
        raise SystemExit(f"--test: its classes {list(classes)} are the selection's in another order "
                         f"({classnames}); write the class names file (retrieve --classnames) in the test set's "
                         "label order and retrieve again")
