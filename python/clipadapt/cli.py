"""The `clipadapt` command."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from clipadapt import _validate
from clipadapt._files import exclusive_directory
from clipadapt.commands import HelpFormatter, example_epilog

# name: (help, module whose add_arguments(parser) gives the command its options and its
# ``run(args) -> exit code``, the extra that brings what the command imports). Only the module of
# the command being run is imported, so that `clipadapt info` does not pay for torch or the
# benchmarks.
_COMMANDS = {
    "info": ("print the build and the devices the kernels can use", "clipadapt.commands.info", None),
    "bench": ("benchmarks against baselines; without a benchmark name, run all of them at a small size",
              "clipadapt.commands.bench", "bench"),
    "reclip": ("ReCLIP source-free adaptation of a CLIP model to an unlabelled target dataset",
               "clipadapt.commands.reclip", "clip"),
    "mudg": ("MUDG: index a captioned source set, retrieve and select training images for a target's class names, "
             "fine-tune CLIP on them", "clipadapt.commands.mudg", "clip"),
}
_METHODS = ("reclip", "mudg")
DESCRIPTION = ("clipadapt: exact k-NN graphs, label propagation, k-means and IVF indexes for CLIP embeddings "
               "(CPU and CUDA), and the ReCLIP and MUDG adaptation methods built on them.")
# Example command lines of every command, by the words after `clipadapt` ("" is clipadapt itself).
EXAMPLES = {
    "": ["clipadapt info", "clipadapt bench knn --n 20000 --d 512 --k 10",
         "clipadapt reclip --dataset cifar10 --download --model ViT-L-14 --pretrained openai --out runs/c10 "
         "--device cuda", "clipadapt mudg index --help"],
    "info": ["clipadapt info"],
    "bench": ["clipadapt bench", "clipadapt bench knn --n 100000 --d 768 --k 10,100 --threads 16 --device cuda"],
    "bench knn": ["clipadapt bench knn --n 20000 --d 512 --k 10 --threads 2",
                  "clipadapt bench knn --n 100000 --d 768 --k 10,100 --dtype bfloat16 --device cuda"],
    "bench lp": ["clipadapt bench lp --n 50000 --classes 100 --threads 2"],
    "bench kmeans": ["clipadapt bench kmeans --n 100000 --d 512 --clusters 1024 --threads 2"],
    "bench ivf": ["clipadapt bench ivf --n 100000 --d 512 --clusters 1024 --threads 2",
                  "clipadapt bench ivf --images img.npy --captions cap.npy --queries q.npy --clusters 1024"],
    "bench reclip-lp": ["clipadapt bench reclip-lp --m 10000,51000 --classes 1000 --threads 2"],
    "bench mudg-index": ["clipadapt bench mudg-index --n 200000 --d 768 --threads 2 --n-queries 1000"],
    "bench distributed": ["clipadapt bench distributed --n 20000 --d 768 --ranks 1,2,4 --threads 2"],
    "reclip": ["clipadapt reclip --dataset cifar10 --root data --download --model ViT-L-14 --pretrained openai "
               "--out runs/reclip-cifar10 --device cuda",
               "clipadapt reclip --dataset data/office_home/Art --model ViT-L-14 --weights ViT-L-14-openai.bin "
               "--quick-gelu --out runs/reclip-art --device cuda"],
    "mudg": ["clipadapt mudg corpus --images laion-subset/ --model ViT-L-14 --pretrained openai --out corpus",
             "clipadapt mudg index --corpus corpus --out index",
             "clipadapt mudg retrieve --corpus corpus --index index --model ViT-L-14 --pretrained openai "
             "--dataset imagenet --out selection",
             "clipadapt mudg train --selection selection --model ViT-B-16 --pretrained openai --test imagenet "
             "--out runs/mudg-imagenet --device cuda"],
    "mudg corpus": ["clipadapt mudg corpus --images laion-subset/ --model ViT-L-14 --pretrained openai --out corpus "
                    "--device cuda"],
    "mudg index": ["clipadapt mudg index --corpus corpus --out index --device cuda",
                   "torchrun --standalone --nproc-per-node 8 -m clipadapt mudg index --corpus corpus --out index "
                   "--device cuda"],
    "mudg retrieve": ["clipadapt mudg retrieve --corpus corpus --index index --model ViT-L-14 --pretrained openai "
                      "--dataset imagenet --descriptors descriptions.list --out selection"],
    "mudg train": ["clipadapt mudg train --selection selection --model ViT-B-16 --pretrained openai --test imagenet "
                   "--root data --out runs/mudg-imagenet --device cuda"],
}


def main(argv: list[str] | None = None) -> int:
    """Run the ``clipadapt`` command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="clipadapt", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    # The first word that is not an option names the command (clipadapt itself has only -h).
    chosen = next((word for word in argv if not word.startswith("-")), None)
    for name, (help_text, module, _) in _COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            with _missing_dependency_exits(name):
                importlib.import_module(module).add_arguments(command)
    _plain_help(parser)
    args = parser.parse_args(argv)
    with _missing_dependency_exits(args.command):
        return _run_method(args) if args.command in _METHODS else args.run(args)


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """``parser`` and every sub-command parser under it: plain-text help (HelpFormatter), the
    summary a sub-command is listed with as its description, and its examples as the epilog."""
    parser.formatter_class = HelpFormatter
    parser.epilog = example_epilog(EXAMPLES[" ".join(parser.prog.split()[1:])])
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help for choice in action._choices_actions}
            for name, command in action.choices.items():
                command.description = command.description or summaries.get(name)
                _plain_help(command)


@contextmanager
def _missing_dependency_exits(command: str) -> Iterator[None]:
    """A third-party module that is not installed ends ``command`` with one line naming the
    extra that brings it, and exit code 2, instead of a traceback."""
    try:
        yield
    except ModuleNotFoundError as error:
        if not error.name or error.name.split(".")[0] == "clipadapt":
            raise
        extra = _COMMANDS[command][2]
        hint = f"`pip install clipadapt[{extra}]` installs what it needs" if extra else "reinstall clipadapt"
        print(f"clipadapt {command}: error: the module {error.name.split('.')[0]!r} is not installed; {hint}",
              file=sys.stderr)
        raise SystemExit(2) from None


def _run_method(args: argparse.Namespace) -> int:
    """A method command, holding its ``--out`` directory (a second run on it is refused).

    Bad input ends it with one line on stderr, as argparse's error line, and exit code 2; no
    traceback. Bad input is an option the command refuses (it raises ``SystemExit`` with the
    message), an argument error of the library, or a file that cannot be read or written.
    """
    try:
        _check_device_option(args.device)
        with exclusive_directory(Path(args.out), name="--out") if _holds_the_output(args) else nullcontext():
            return args.run(args)
    except SystemExit as refusal:
        if not isinstance(refusal.code, str):
            raise
        message = refusal.code
    except (ValueError, TypeError, OSError, MemoryError) as error:
        message = str(error)
    print(f"clipadapt {args.command}: error: {message}", file=sys.stderr)
    return 2


def _holds_the_output(args: argparse.Namespace) -> bool:
    """Whether this process locks ``--out``: always, except a rank other than 0 of a torchrun
    launch of a command that runs on the group (its parser sets ``runs_on_a_group``): rank 0
    holds the directory that all of the group's ranks write."""
    return not getattr(args, "runs_on_a_group", False) or os.environ.get("RANK", "0") == "0"


def _check_device_option(device: str) -> None:
    """``--device`` names the CPU or a CUDA device that torch can use (``cuda`` is ``cuda:0``)."""
    _validate.device(device, "--device")
    if device == "cpu":
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    number = int(device.partition(":")[2] or 0)
    if count == 0:
        raise ValueError(f"--device {device}: torch sees no usable CUDA device (no GPU, no driver, or a CPU-only "
                         "torch build); use --device cpu")
    if number >= count:
        raise ValueError(f"--device {device}: torch sees {count} CUDA device(s), cuda:0 to cuda:{count - 1}; pick "
                         "one of them")


if __name__ == "__main__":
    raise SystemExit(main())
