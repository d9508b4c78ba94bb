"""The one place that makes torchvision importable where its compiled ops cannot load.

A torchvision wheel built for another torch (here: a CUDA torchvision next to CPU torch) fails
at import: its `_C` extension does not load, so the schemas of `torchvision::nms` and
`torchvision::qnms` are never defined, and torchvision's meta registrations then raise
"operator torchvision::nms does not exist". open_clip only needs torchvision's pure-Python
transforms, so when (and only when) that happens we define the two schemas, without kernels,
and import again. Calling nms then fails loudly instead of the whole import.
"""
from __future__ import annotations

import sys
from types import ModuleType

_MISSING_OPS_MESSAGE = "torchvision::nms does not exist"
_schemas = None  # the torch.library.Library that holds the stand-in schemas, kept alive


def import_torchvision() -> ModuleType:
    """``import torchvision``, defining the stand-in op schemas first if its ops cannot load."""
    global _schemas
    try:
        import torchvision
        return torchvision
    except RuntimeError as error:
        if _MISSING_OPS_MESSAGE not in str(error):
            raise
    import torch

    for name in [module for module in sys.modules if module == "torchvision" or module.startswith("torchvision.")]:
        del sys.modules[name]
    _schemas = torch.library.Library("torchvision", "DEF")
    _schemas.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _schemas.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision
    return torchvision
