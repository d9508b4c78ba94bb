"""The ``clipadapt`` command."""
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


def main(argv: list[str] | None = None) -> int:
    """Run the ``clipadapt`` command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="clipadapt", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    # The first word that is not an option names the command (clipadapt itself has only -h).
    chosen = next((word for word in argv if not word.startswith("-")), None)
    for name, (help_text, module, _) in _COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            with _missing_dependency_exits(name):
                importlib.import_module(module).add_arguments(command)
    args = parser.parse_args(argv)
    with _missing_dependency_exits(args.command):
        return _run_method(args) if args.command in _METHODS else args.run(args)


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
