"""The ReCLIP self-training loop, with run hygiene: progress bars, logging,
per-epoch checkpoints and resume, a JSON result and a PNG plot, reproducible from a seed."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from clipadapt.clip.amp import autocast
from clipadapt.clip.data import image_features
from clipadapt.clip.models import ClipModel
from clipadapt.clip.prompts import DatasetPrompts
from clipadapt.clip.runs import check_prompts, plain_numbers, save_checkpoint, write_result
from clipadapt.reclip.branches import (ClassName, encode_ensemble, encode_prompts, load_trained_state,
                                       single_template_prompts, text_branch, trained_state, visual_branch)
from clipadapt.reclip.objectives import (LOGIT_SCALE, agreement_mask, centroid_logits, combined_logits, epoch_count,
                                         text_branch_loss, visual_branch_loss)
from clipadapt.reclip.projection import DEFAULT_CUT_DIM, cut_dim_for, text_projection
from clipadapt.reclip.pseudo_labels import propagate_pseudo_labels

log = logging.getLogger(__name__)


@dataclass
class ReCLIPConfig:
    """Hyper-parameters; the defaults are the released configuration.

    ``epochs=None`` applies the rule min(100, int(N/5000 + 2)). ``cut_dim=None`` applies 768, or
    250 above 500 classes: the released code runs with 768 for every dataset, and a comment there
    gives 250 for datasets with more than 500 classes, which we take to be how its ImageNet results
    were made (pass ``cut_dim=768`` for the runnable default everywhere). ``k``, ``alpha``,
    ``max_iter`` and ``tol`` are the label propagation's (:func:`clipadapt.label_propagation`):
    neighbours (20), strength, and its conjugate-gradient stopping rule. ``visual_loss``
    "released" keeps the released code's extra 1/B in the V loss ("mean" removes it);
    ``empty_centroid`` "nan" is the released behaviour for a class no node is predicted as
    ("text" keeps its text embedding). ``synonym_prompt``
    "released" formats ReCLIP-T's single-template prompt of a class given by synonyms with the
    Python list, as the released code does (FER2013: "a photo of a ['happy', 'smiling'] looking
    face."); "first" uses its first synonym. ``amp`` "fp16" (default) autocasts the forwards on a
    GPU, as near as autocast comes to the released run's float16 model (float16 matmuls,
    LayerNorms in float32); ``None`` runs in float32, "bf16" in bfloat16; CPU runs are float32.
    ``feature_cache`` is a directory where the frozen visual encoder's features (the T branch's,
    identical in every epoch) are cached across runs.
    """

    epochs: int | None = None
    batch_size: int = 64
    lr_visual: float = 1e-3
    lr_text: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    k: int = 20
    alpha: float = 0.99
    cut_dim: int | None = None
    max_iter: int = 20
    tol: float = 1e-6
    visual_loss: Literal["released", "mean"] = "released"
    empty_centroid: Literal["nan", "text"] = "nan"
    synonym_prompt: Literal["released", "first"] = "released"
    amp: Literal["fp16", "bf16"] | None = "fp16"
    feature_cache: str | None = None
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0

    def __post_init__(self) -> None:
        plain_numbers(self)


@dataclass
class EpochRecord:
    """Accuracies (%) of the evaluation that starts an epoch, its pseudo labels, and timings (s)."""

    epoch: int
    accuracy_text: float
    accuracy_visual: float
    accuracy_combined: float
    pseudo_accuracy_text: float
    pseudo_accuracy_visual: float
    agreement: float
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class ReCLIPResult:
    """What :meth:`ReCLIP.fit` returns; :meth:`to_dict` is the run's ``result.json``.

    Attributes:
        architecture, weights, activation: the CLIP model adapted (:meth:`ClipModel.identity`).
        classnames: the classes, each a name or its synonyms; templates: the prompt templates.
        epochs: epochs run; config: the hyper-parameters; cut_dim: the projection's rank.
        zero_shot_accuracy: combined accuracy (%) of the evaluation before the first epoch.
        best_epoch_accuracy, best_epoch: the best epoch-start evaluation, as the released code
            reports it (selected with the test labels).
        final_accuracy: ``{"text", "visual", "combined"}`` accuracies (%) after the last epoch.
        history: one :class:`EpochRecord` per epoch.
    """

    architecture: str
    weights: str
    activation: str
    classnames: list[ClassName]
    templates: list[str]
    epochs: int
    config: ReCLIPConfig
    cut_dim: int
    zero_shot_accuracy: float | None
    best_epoch_accuracy: float | None
    best_epoch: int | None
    final_accuracy: dict[str, float]
    history: list[EpochRecord]

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready plain values (``method``, ``classes`` added)."""
        return {"method": "ReCLIP", "classes": len(self.classnames), **asdict(self)}


class _Indexed(torch.utils.data.Dataset):
    """(image, label, index): training batches look up their pseudo labels by dataset index."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        image, label = self.dataset[index]
        return image, label, index


class ReCLIP:
    """Source-free adaptation of a CLIP model to an unlabelled target dataset (transductive).

    Usage: ``ReCLIP(clip, get_prompts("cifar10")).fit(dataset, out_dir="runs/cifar10")`` where
    ``dataset`` yields (preprocessed image tensor, label); labels are used for reporting only.
    ``prompts`` (a :class:`~clipadapt.clip.DatasetPrompts`, as :class:`clipadapt.mudg.MUDG`
    takes it) gives the classes and the templates: the text ensemble averages every template
    with every name of a class (its synonyms too), ReCLIP-T prompts with ``templates[0]``. The
    two branches share ``clip.model``'s frozen weights (set to ``requires_grad=False``) and own
    only the LayerNorms they train.
    """

    def __init__(self, clip: ClipModel, prompts: DatasetPrompts, config: ReCLIPConfig | None = None):
        self.prompts = check_prompts(prompts)
        self.clip = clip
        self.classnames: list[ClassName] = list(prompts.classes_with_synonyms)
        self.templates = list(prompts.templates)
        self.config = config or ReCLIPConfig()
        self.history: list[EpochRecord] = []

    # ---- the loop -----------------------------------------------------------------------

    def fit(self, dataset: Any, *, out_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
            dataset_id: str = "target") -> ReCLIPResult:
        """Adapt on ``dataset`` and return the result (also written to ``out_dir/result.json``,
        with a plot ``out_dir/curves.png``). ``dataset_id`` names the dataset in the feature cache key."""
        cfg = self.config
        self._check_neighbours(len(dataset))
        torch.manual_seed(cfg.seed)
        self._setup()
        epochs = cfg.epochs if cfg.epochs is not None else epoch_count(len(dataset))
        out = Path(out_dir) if out_dir is not None else None
        start = self._restore(out) if resume and out is not None else 0
        eval_loader = self._loader(dataset, shuffle=False)
        frozen_features, labels = self._frozen_image_features(dataset, dataset_id, progress)
        for epoch in range(start, epochs):
            record, text_labels, visual_labels = self._evaluate_and_label(epoch, eval_loader, frozen_features, labels,
                                                                          progress)
            began = time.perf_counter()
            self._train_epoch(dataset, epoch, frozen_features, text_labels, visual_labels, progress)
            self._refresh_text()
            record.seconds["train"] = time.perf_counter() - began
            self.history.append(record)
            log.info("epoch %d: T %.2f V %.2f combined %.2f pseudo T %.2f V %.2f agree %.2f", epoch,
                     record.accuracy_text, record.accuracy_visual, record.accuracy_combined,
                     record.pseudo_accuracy_text, record.pseudo_accuracy_visual, record.agreement)
            if out is not None:
                self._checkpoint(out, epoch)
        final = self._final_accuracies(eval_loader, frozen_features, labels, progress)
        result = self._result(epochs, final)
        if out is not None:
            self._write_outputs(out, result)
        return result

    def predict(self, dataset: Any, *, progress: bool = False) -> torch.Tensor:
        """Final prediction: argmax of the averaged T and V logits (int64 [N])."""
        loader = self._loader(dataset, shuffle=False)
        frozen, _ = self._frozen_image_features(dataset, "predict", progress, cache=False)
        text_logits, visual_logits, _ = self._logits(loader, frozen, progress)
        return combined_logits(text_logits, visual_logits).argmax(1)

    # ---- set-up ------------------------------------------------------------------------

    def _check_neighbours(self, n_images: int) -> None:
        """Before any work: the graph's nodes (one per class and per image) must outnumber k."""
        nodes = len(self.classnames) + n_images
        if not 1 <= self.config.k < nodes:
            raise ValueError(f"config.k: the label-propagation graph has {nodes} nodes ({len(self.classnames)} classes "
                             f"+ {n_images} images), so k must lie in [1, {nodes - 1}], got {self.config.k}; lower it "
                             "(clipadapt reclip --k)")

    def _setup(self) -> None:
        cfg, model = self.config, self.clip.model.to(self.config.device)
        self.visual_model, visual_parameters = visual_branch(model)
        self.text_model, text_parameters = text_branch(model)
        self.visual_optimizer = torch.optim.SGD(visual_parameters, lr=cfg.lr_visual, momentum=cfg.momentum,
                                                weight_decay=cfg.weight_decay)
        self.text_optimizer = torch.optim.SGD(text_parameters, lr=cfg.lr_text, momentum=cfg.momentum,
                                              weight_decay=cfg.weight_decay)
        initial_text = encode_ensemble(model, self.clip.tokenizer, self.classnames, self.templates, cfg.device)
        cut_dim = cfg.cut_dim if cfg.cut_dim is not None else cut_dim_for(len(self.classnames), DEFAULT_CUT_DIM)
        self.cut_dim = cut_dim
        self.initial_text = initial_text                    # T0: LP_V's labelled nodes, always
        self.visual_projection = text_projection(initial_text, cut_dim)  # P(T0), LP_V's projection, always
        self.visual_classifier = initial_text.half()        # W_V, replaced by LP_V's centroids each epoch
        self.text_nodes = initial_text                      # LP_T's nodes, refreshed after each epoch
        self.text_projection = self.visual_projection
        self.first_prompts = single_template_prompts(self.templates[0], self.classnames, cfg.synonym_prompt)
        self.history = []

    def _loader(self, dataset: Any, *, shuffle: bool, seed: int | None = None) -> torch.utils.data.DataLoader:
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.utils.data.DataLoader(_Indexed(dataset), batch_size=self.config.batch_size, shuffle=shuffle,
                                           generator=generator, num_workers=self.config.num_workers)

    def _autocast(self) -> Any:
        return autocast(self.config.amp, self.config.device)

    # ---- evaluation and pseudo labels ----------------------------------------------------

    def _frozen_image_features(self, dataset: Any, dataset_id: str, progress: bool,
                               cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Images through the original (frozen) visual encoder: the T branch's features, the
        same in every epoch, computed once (and cached on disk with ``feature_cache``)."""
        cfg = self.config
        features, labels = image_features(self.clip, dataset, dataset_id=dataset_id, batch_size=cfg.batch_size,
                                          device=cfg.device, cache_dir=cfg.feature_cache if cache else None,
                                          num_workers=cfg.num_workers, amp=cfg.amp, progress=progress)
        return features.to(cfg.device), labels.to(cfg.device)

    @torch.no_grad()
    def _logits(self, loader: Any, frozen: torch.Tensor, progress: bool) -> tuple[torch.Tensor, ...]:
        device = self.config.device
        text_classifier = encode_prompts(self.text_model, self.clip.tokenizer, self.first_prompts, device)
        visual_features = []
        for images, _, _ in tqdm(loader, desc="evaluate", disable=not progress, leave=False):
            with self._autocast():
                encoded = self.visual_model.encode_image(images.to(device))
            visual_features.append(F.normalize(encoded.float(), dim=1))
        visual = torch.cat(visual_features)
        text_logits = LOGIT_SCALE * frozen @ text_classifier.T
        return text_logits, centroid_logits(visual, self.visual_classifier.float()), visual

    def _evaluate_and_label(self, epoch: int, loader: Any, frozen: torch.Tensor, labels: torch.Tensor,
                            progress: bool) -> tuple[EpochRecord, torch.Tensor, torch.Tensor]:
        began = time.perf_counter()
        text_logits, visual_logits, visual_features = self._logits(loader, frozen, progress)
        evaluated = time.perf_counter()
        cfg = self.config
        options = dict(k=cfg.k, alpha=cfg.alpha, max_iter=cfg.max_iter, tol=cfg.tol)
        text_pseudo = propagate_pseudo_labels(self.text_nodes, frozen, self.text_projection, **options)
        visual_pseudo = propagate_pseudo_labels(self.initial_text, visual_features, self.visual_projection,
                                                with_centroids=True, empty_centroid=cfg.empty_centroid, **options)
        self.visual_classifier = visual_pseudo.centroids
        record = EpochRecord(
            epoch=epoch, accuracy_text=_accuracy(text_logits, labels), accuracy_visual=_accuracy(visual_logits, labels),
            accuracy_combined=_accuracy(combined_logits(text_logits, visual_logits), labels),
            pseudo_accuracy_text=_percent(text_pseudo.labels == labels),
            pseudo_accuracy_visual=_percent(visual_pseudo.labels == labels),
            agreement=_percent(agreement_mask(text_pseudo.labels, visual_pseudo.labels)),
            seconds={"evaluate": evaluated - began, "label_propagation": time.perf_counter() - evaluated})
        return record, text_pseudo.labels, visual_pseudo.labels

    # ---- training ------------------------------------------------------------------------

    def _train_epoch(self, dataset: Any, epoch: int, frozen: torch.Tensor, text_labels: torch.Tensor,
                     visual_labels: torch.Tensor, progress: bool) -> None:
        device, cfg = self.config.device, self.config
        self.visual_model.eval()  # released: eval mode (no dropout, frozen BN statistics) while training LNs
        loader = self._loader(dataset, shuffle=True, seed=cfg.seed * 1000 + epoch)
        for images, _, index in tqdm(loader, desc=f"train epoch {epoch}", disable=not progress, leave=False):
            index = index.to(device)
            with self._autocast():
                text_classifier = encode_prompts(self.text_model, self.clip.tokenizer, self.first_prompts, device)
                text_logits = LOGIT_SCALE * frozen[index] @ text_classifier.T
                visual = F.normalize(self.visual_model.encode_image(images.to(device)).float(), dim=1)
                visual_logits = centroid_logits(visual, self.visual_classifier.float())
            mask = agreement_mask(text_labels[index], visual_labels[index])
            _step(self.text_optimizer, text_branch_loss(text_logits.float(), text_labels[index], mask))
            _step(self.visual_optimizer, visual_branch_loss(visual_logits.float(), visual_labels[index], mask,
                                                            cfg.visual_loss))

    def _refresh_text(self) -> None:
        """After an epoch: LP_T's nodes and projection from the updated text encoder's ensemble."""
        self.text_nodes = encode_ensemble(self.text_model, self.clip.tokenizer, self.classnames, self.templates,
                                          self.config.device)
        self.text_projection = text_projection(self.text_nodes, self.cut_dim)

    # ---- results and checkpoints ---------------------------------------------------------

    def _final_accuracies(self, loader: Any, frozen: torch.Tensor, labels: torch.Tensor,
                          progress: bool) -> dict[str, float]:
        """The adapted models evaluated after the last epoch (the released code never does this)."""
        text_logits, visual_logits, _ = self._logits(loader, frozen, progress)
        return {"text": _accuracy(text_logits, labels), "visual": _accuracy(visual_logits, labels),
                "combined": _accuracy(combined_logits(text_logits, visual_logits), labels)}

    def _result(self, epochs: int, final: dict[str, float]) -> ReCLIPResult:
        best = max(self.history, key=lambda r: r.accuracy_combined, default=None)
        return ReCLIPResult(
            **self.clip.identity(), classnames=self.classnames, templates=self.templates, epochs=epochs,
            config=self.config, cut_dim=self.cut_dim,
            zero_shot_accuracy=self.history[0].accuracy_combined if self.history else None,
            best_epoch_accuracy=best.accuracy_combined if best else None,  # released: selected with test labels
            best_epoch=best.epoch if best else None, final_accuracy=final, history=list(self.history))

    def _state(self, epoch: int) -> dict[str, Any]:
        """What resuming needs besides ``clip``: the trained LayerNorms only, not the model copies."""
        return {"epoch": epoch, "visual_model": trained_state(self.visual_model),
                "text_model": trained_state(self.text_model), "visual_optimizer": self.visual_optimizer.state_dict(),
                "text_optimizer": self.text_optimizer.state_dict(), "visual_classifier": self.visual_classifier,
                "text_nodes": self.text_nodes, "history": [asdict(record) for record in self.history],
                "config": asdict(self.config)}

    def _checkpoint(self, out: Path, epoch: int) -> None:
        save_checkpoint(self._state(epoch), out)

    def _restore(self, out: Path) -> int:
        """Load ``out/checkpoint.pt`` if present; returns the first epoch still to run. The
        checkpoint holds the trained LayerNorms only: resume with the same ``clip``."""
        path = out / "checkpoint.pt"
        if not path.is_file():
            log.info("resume: no checkpoint in %s, starting from epoch 0", out)
            return 0
        state = torch.load(path, map_location=self.config.device, weights_only=False)
        load_trained_state(self.visual_model, state["visual_model"])
        load_trained_state(self.text_model, state["text_model"])
        self.visual_optimizer.load_state_dict(state["visual_optimizer"])
        self.text_optimizer.load_state_dict(state["text_optimizer"])
        self.visual_classifier = state["visual_classifier"]
        self.text_nodes = state["text_nodes"]
        self.text_projection = text_projection(self.text_nodes, self.cut_dim)
        self.history = [EpochRecord(**record) for record in state["history"]]
        log.info("resume: continuing after epoch %d from %s", state["epoch"], path)
        return state["epoch"] + 1

    def _write_outputs(self, out: Path, result: ReCLIPResult) -> None:
        write_result(out, result.to_dict())
        plot_history(self.history, out / "curves.png", title=f"ReCLIP {self.clip.architecture}")


def plot_history(history: Sequence[EpochRecord], path: Path, *, title: str) -> None:
    """Per-epoch accuracies of T, V, combined, the pseudo labels and their agreement, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r.epoch for r in history]
    figure, axis = plt.subplots(figsize=(7, 4))
    for name in ("accuracy_text", "accuracy_visual", "accuracy_combined", "pseudo_accuracy_text",
                 "pseudo_accuracy_visual", "agreement"):
        axis.plot(epochs, [getattr(r, name) for r in history], marker="o", label=name.replace("_", " "))
    axis.set(xlabel="epoch (evaluation before its training)", ylabel="%", title=title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor | None) -> None:
    """Backward and step, or nothing when no sample of the batch has agreeing pseudo labels."""
    optimizer.zero_grad(set_to_none=True)
    if loss is not None:
        loss.backward()
        optimizer.step()


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return _percent(logits.argmax(1) == labels)


def _percent(hits: torch.Tensor) -> float:
    return 100.0 * hits.float().mean().item()
