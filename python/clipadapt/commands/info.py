"""``clipadapt info``: the build and the devices the kernels can use, as JSON."""
from __future__ import annotations

import argparse
import json
import sys

from clipadapt.device import device_summary


def add_arguments(info: argparse.ArgumentParser) -> None:
    """``clipadapt info`` takes no options; its default ``run(args) -> exit code`` prints the summary."""
    info.set_defaults(run=run_info)


def run_info(args: argparse.Namespace) -> int:
    json.dump(device_summary(), sys.stdout, indent=2)
    print()
    return 0
