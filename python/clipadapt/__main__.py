"""``python -m clipadapt``: the ``clipadapt`` command."""
from clipadapt.cli import main

raise SystemExit(main())
