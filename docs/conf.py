"""Sphinx configuration of the clipadapt documentation (docs/README.md says how to build it).

The API pages import the installed package (its compiled extension included), so the reference
always describes the code that runs; the tutorials and the benchmarks page are notebooks in
MyST Markdown that myst-nb executes on every build.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import clipadapt

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "clipadapt"
author = "The clipadapt developers"
copyright = "the clipadapt developers (MIT licence)"
release = clipadapt.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_copybutton",
    "myst_nb",
    "cli_help",
]

exclude_patterns = ["_build", "README.md", "jupyter_execute", ".jupyter_cache"]
templates_path = []
html_static_path = ["_static"]
html_theme = "furo"
html_title = f"clipadapt {release}"

# --- API reference: Google-style docstrings, type hints in the signature only --------------------
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": False}
autosummary_generate = False
add_module_names = False

# Broken references inside the package are errors (a renamed function breaks the build); names of
# other libraries (numpy, torch, typing, ...) are not resolved, since the build has no network to
# fetch their inventories.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!clipadapt\b).*")]

# --- MyST and notebook execution ------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3
# Every build runs every tutorial from scratch: a tutorial that no longer runs fails the build.
nb_execution_mode = os.environ.get("CLIPADAPT_DOCS_EXECUTE", "force")
nb_execution_raise_on_error = True
nb_execution_timeout = 1800  # seconds per cell: generous for a loaded CI machine
nb_execution_show_tb = True
nb_merge_streams = True
# Library warnings and progress bars (stderr) would bury what the tutorials print.
nb_output_stderr = "remove"
# Markdown printed by a notebook (the benchmark tables) is parsed as MyST, which has tables.
nb_render_markdown_format = "myst"
# The tutorials run from docs/ so that they import docs/_ext's helpers and read the benchmark JSON.
nb_execution_in_temp = False
