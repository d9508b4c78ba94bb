"""The ``clipadapt`` command."""
from __future__ import annotations

import argparse
import json
import sys

from clipadapt.device import device_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clipadapt", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="print the build and the devices the kernels can use")
    args = parser.parse_args(argv)
    if args.command == "info":
        json.dump(device_summary(), sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
