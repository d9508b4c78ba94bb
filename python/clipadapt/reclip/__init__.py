"""ReCLIP (Hu et al., WACV 2024): source-free adaptation of CLIP.

This package holds the method's building blocks: the text-subspace projection,
label-propagation pseudo labels through clipadapt's sparse primitive and the
cross-modality self-training objectives.
"""
from clipadapt.reclip.objectives import (agreement_mask, centroid_logits, combined_logits, epoch_count,
                                         text_branch_loss, visual_branch_loss)
from clipadapt.reclip.projection import cut_dim_for, text_projection
from clipadapt.reclip.pseudo_labels import (PseudoLabels, propagate_pseudo_labels, pseudo_label_nodes,
                                           pseudo_labels_from_graph)
from clipadapt.reclip.trainer import EpochRecord, ReCLIP, ReCLIPConfig, ReCLIPResult

__all__ = [
    "EpochRecord",
    "PseudoLabels",
    "ReCLIP",
    "ReCLIPConfig",
    "ReCLIPResult",
    "agreement_mask",
    "centroid_logits",
    "combined_logits",
    "cut_dim_for",
    "epoch_count",
    "propagate_pseudo_labels",
    "pseudo_label_nodes",
    "pseudo_labels_from_graph",
    "text_branch_loss",
    "text_projection",
    "visual_branch_loss",
]
