"""MUDG fine-tuning and evaluation: partial fine-tuning of CLIP with a learnable
text prompt and the diversity-preserving soft-target loss ("initreg_paired"), an EMA model for
evaluation, and run hygiene (progress bars, logging, checkpoint and exact resume, a JSON
result and a PNG plot, reproducible from a seed)."""
from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from clipadapt.clip._torchvision import import_torchvision
from clipadapt.clip.amp import autocast
from clipadapt.clip.models import ClipModel
from clipadapt.clip.prompts import DatasetPrompts
from clipadapt.clip.runs import check_prompts, plain_numbers, save_checkpoint, write_result
from clipadapt.mudg.augment import augmented_prompt
from clipadapt.mudg.prompt import PromptedCLIP, check_standard_clip, check_template, context_token_ids, tokenize_prompts

log = logging.getLogger(__name__)

# Config fields a resumed run may change: they do not alter the computation done so far.
_RESUMABLE_CHANGES = {"iterations", "checkpoint_every", "eval_every", "device", "num_workers"}
# Independent random streams derived from the seed.
_BATCH_ORDER, _AUGMENTATION = 0, 1


@dataclass
class MUDGConfig:
    """Hyper-parameters; the defaults are the official ViT-B/16 "initreg_paired" recipe of the released scripts.

    ``lr`` 6.4e-4 is for B/16 at batch size 128; the official ViT-L/14 runs use ``lr=1.6e-4,
    batch_size=64``. The prompt context trains at ``lr * prompt_lr_multiplier``.
    ``logit_scale`` is the fixed student scale (25) and ``teacher_temperature`` the frozen
    teacher's (10); ``mix`` is λ in ``y = (1-λ) onehot + λ P0`` (0 gives plain cross-entropy).
    ``n_descriptors`` descriptors are cycled, one per iteration (``it mod n``), and averaged
    at evaluation. ``vision_trainable_from`` / ``text_trainable_from`` index the first
    trainable residual block of each tower (9 in the official code; smaller for small models).
    ``context`` are the template's first words, replaced by learnable vectors; every template
    must start with them. ``double_comma`` keeps the official ",," in descriptor prompts;
    ``official_eval_commas`` evaluates them as the official evaluation tokenises them (the
    two commas as two tokens, where training has CLIP's single ",," token); False evaluates
    the training prompts.
    ``amp`` "fp16" (default: autocast with a GradScaler, as the official runs), "bf16" or None
    (float32) applies on CUDA only; CPU runs are float32. ``checkpoint_every`` (iterations) also checkpoints at the end;
    ``eval_every=None`` evaluates the test set only before training and at the end.
    """

    iterations: int = 200
    batch_size: int = 128
    lr: float = 6.4e-4
    prompt_lr_multiplier: float = 10.0
    momentum: float = 0.9
    weight_decay: float = 1e-5
    logit_scale: float = 25.0
    teacher_temperature: float = 10.0
    mix: float = 0.2
    n_descriptors: int = 8
    ema_decay: float = 0.995
    vision_trainable_from: int = 9
    text_trainable_from: int = 9
    context: str = "a photo of"
    double_comma: bool = True
    official_eval_commas: bool = True
    amp: Literal["fp16", "bf16"] | None = "fp16"
    checkpoint_every: int = 50
    eval_every: int | None = None
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0

    def __post_init__(self) -> None:
        plain_numbers(self)

    def check(self) -> None:
        """Raise ValueError naming the first field out of range."""
        positive = ("iterations", "batch_size", "n_descriptors", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"config.{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("vision_trainable_from", "text_trainable_from", "seed", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"config.{name}: must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"config.mix: λ must lie in [0, 1], got {self.mix}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"config.ema_decay: must lie in [0, 1), got {self.ema_decay}")
        if self.amp not in (None, "fp16", "bf16"):
            raise ValueError(f"config.amp: use None, 'fp16' or 'bf16', got {self.amp!r}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(f"config.eval_every: must be None or >= 1, got {self.eval_every}")


# ---- the objective, as pure functions ------------------------------------------------------------

def teacher_probabilities(image_features: torch.Tensor, text_features: torch.Tensor,
                          temperature: float) -> torch.Tensor:
    """P0 = softmax(temperature · f0 t0ᵀ) (float32 [B, C]) from L2-normalised teacher image
    features f0 [B, D] and class text features t0 [C, D]."""
    return torch.softmax(temperature * image_features.float() @ text_features.float().T, dim=1)


def soft_targets(labels: torch.Tensor, teacher_probs: torch.Tensor, mix: float) -> torch.Tensor:
    """y = (1 - mix) · onehot(labels) + mix · P0 ([B, C], P0's dtype) for int64 labels [B]."""
    onehot = F.one_hot(labels, teacher_probs.shape[1]).to(teacher_probs.dtype)
    return (1.0 - mix) * onehot + mix * teacher_probs


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean_i Σ_c −targets[i, c] · log_softmax(logits_i)[c] (a scalar) for logits, targets [B, C]."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay · ema + (1 − decay) · param for every parameter that trains in ``model``.

    ``ema`` is a copy of ``model``. Frozen parameters are constant, so their average is the
    parameter itself; skipping them saves the work (and rounding drift) of averaging them.
    """
    for (name, average), (other, parameter) in zip(ema.named_parameters(), model.named_parameters()):
        if name != other:
            raise ValueError(f"ema: parameter {name!r} does not match the model's {other!r}; pass a copy of the model")
        if parameter.requires_grad:
            average.mul_(decay).add_(parameter.detach(), alpha=1.0 - decay)


# ---- trainable parameters ---------------------------------------------------------------------

def select_trainable(prompted: PromptedCLIP, vision_from: int,
                     text_from: int) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Freeze everything, then unfreeze and return (backbone parameters, [prompt context]).

    Backbone: ``visual.transformer.resblocks[vision_from:]``, ``visual.proj``,
    ``visual.ln_post``, ``transformer.resblocks[text_from:]``, ``text_projection``,
    ``ln_final``. Frozen: patch/class/positional embeddings, ``ln_pre``, the earlier blocks,
    the token embedding and ``logit_scale``.
    """
    model = prompted.model
    for name, blocks, start in (("vision_trainable_from", model.visual.transformer.resblocks, vision_from),
                                ("text_trainable_from", model.transformer.resblocks, text_from)):
        if start > len(blocks):
            raise ValueError(f"config.{name}: {start} is past the tower's {len(blocks)} blocks; use at most "
                             f"{len(blocks)}")
    modules = [model.visual.transformer.resblocks[vision_from:], model.visual.ln_post,
               model.transformer.resblocks[text_from:], model.ln_final]
    backbone = [p for module in modules for p in module.parameters()]
    for projection in (model.visual.proj, model.text_projection):
        if isinstance(projection, nn.Module):
            backbone += list(projection.parameters())
        elif projection is not None:
            backbone.append(projection)
    prompted.requires_grad_(False)
    for parameter in backbone + [prompted.context]:
        parameter.requires_grad_(True)
    return backbone, [prompted.context]


# ---- data: batch order and augmentation as functions of (seed, iteration) -----------------------

def _derived_seed(*words: int) -> int:
    return int(np.random.SeedSequence(list(words)).generate_state(1)[0])


def batch_indices(n_items: int, batch_size: int, seed: int, iteration: int) -> torch.Tensor:
    """Dataset indices (int64 [min(batch_size, n_items)]) of the training batch at ``iteration``.

    Each pass over the data is a fresh permutation seeded by (seed, pass); it is cut into
    ``n_items // batch_size`` batches and the remainder is dropped (``drop_last``), then the
    next pass starts. With fewer than ``batch_size`` items, every batch holds all of them. A
    pure function, so a resumed run sees the same batches as an uninterrupted one.
    """
    size = min(batch_size, n_items)
    per_pass = n_items // size
    pass_index, position = divmod(iteration, per_pass)
    generator = torch.Generator().manual_seed(_derived_seed(seed, _BATCH_ORDER, pass_index))
    return torch.randperm(n_items, generator=generator)[position * size:(position + 1) * size]


class _IterationBatches(torch.utils.data.Sampler):
    """Batches of (iteration, index) keys for iterations [start, stop)."""

    def __init__(self, n_items: int, batch_size: int, seed: int, start: int, stop: int):
        self.n_items, self.batch_size, self.seed, self.start, self.stop = n_items, batch_size, seed, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self):
        for iteration in range(self.start, self.stop):
            yield [(iteration, int(i)) for i in batch_indices(self.n_items, self.batch_size, self.seed, iteration)]


class _SeededViews(torch.utils.data.Dataset):
    """``dataset[index]`` with torch's generator seeded by (seed, iteration, index), so random
    training transforms give the same view whatever the worker count or a resume."""

    def __init__(self, dataset: Any, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        iteration, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_derived_seed(self.seed, _AUGMENTATION, iteration, index))
            return self.dataset[index]


def training_transform(preprocess: Any, *, horizontal_flip: bool = True,
                       crop_scale: tuple[float, float] = (0.08, 1.0)) -> Any:
    """The training augmentation made from a model's test ``preprocess``:
    RandomResizedCrop(image size, scale=crop_scale; torchvision's default area range, as
    released) and (optionally) RandomHorizontalFlip, then the preprocess's own non-geometric
    steps (RGB conversion, ToTensor, Normalize). Test images keep ``clip.preprocess`` (resize,
    centre crop). Narrow ``crop_scale`` for images whose class a small crop destroys (digits)."""
    if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
        raise ValueError(f"crop_scale: need 0 < low <= high <= 1 (fractions of the image area), got {crop_scale}")
    transforms = import_torchvision().transforms
    steps = getattr(preprocess, "transforms", None)
    crop = next((step for step in steps or () if isinstance(step, transforms.CenterCrop)), None)
    if crop is None:
        raise ValueError("preprocess: expected a torchvision Compose with a CenterCrop (such as clip.preprocess) "
                         "to take the image size from")
    head = [transforms.RandomResizedCrop(crop.size, scale=crop_scale)] + ([transforms.RandomHorizontalFlip()] if horizontal_flip else [])
    rest = [step for step in steps if not isinstance(step, (transforms.Resize, transforms.CenterCrop))]
    return transforms.Compose(head + rest)


def evaluation_transform(preprocess: Any, *, interpolation: Literal["bilinear", "bicubic"] = "bilinear") -> Any:
    """The test images' transform: ``preprocess`` (a torchvision Compose with a Resize, such as
    ``clip.preprocess``) with its resize's interpolation set to ``interpolation``: "bilinear" as
    the released evaluation (torchvision's default), or "bicubic" as open_clip's preprocessing."""
    transforms = import_torchvision().transforms
    modes = {"bilinear": transforms.InterpolationMode.BILINEAR, "bicubic": transforms.InterpolationMode.BICUBIC}
    if interpolation not in modes:
        raise ValueError(f"interpolation: use 'bilinear' or 'bicubic', got {interpolation!r}")
    steps = list(getattr(preprocess, "transforms", None) or ())
    if not any(isinstance(step, transforms.Resize) for step in steps):
        raise ValueError("preprocess: expected a torchvision Compose with a Resize (such as clip.preprocess)")
    return transforms.Compose([
        transforms.Resize(step.size, interpolation=modes[interpolation], max_size=step.max_size,
                          antialias=step.antialias) if isinstance(step, transforms.Resize) else step
        for step in steps])


# ---- the trainer ------------------------------------------------------------------------------

@dataclass
class MUDGResult:
    """What :meth:`MUDG.fit` returns; :meth:`to_dict` is the run's ``result.json``.

    Attributes:
        architecture, weights, activation: the CLIP model fine-tuned (:meth:`ClipModel.identity`).
        classnames: the classes; template: the prompt template; descriptors: those used.
        config: the hyper-parameters; trainable_parameters: how many parameters trained.
        zero_shot_accuracy, final_accuracy: ``{"plain", "descriptors"}`` accuracies (%) before
            training and after the last iteration (None without a test set).
        evaluations: every evaluation, ``{"iteration", "plain", "descriptors"}``.
        loss_history: the training loss of each iteration.
        seconds: wall-clock seconds of ``setup``, ``train`` and ``evaluate``.
    """

    architecture: str
    weights: str
    activation: str
    classnames: list[str]
    template: str
    descriptors: list[str]
    config: MUDGConfig
    trainable_parameters: int
    zero_shot_accuracy: dict[str, float] | None
    final_accuracy: dict[str, float] | None
    evaluations: list[dict[str, float]]
    loss_history: list[float]
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready plain values (``method``, ``classes`` added)."""
        return {"method": "MUDG", "classes": len(self.classnames), **asdict(self)}


class MUDG:
    """MUDG fine-tuning of a CLIP model on a pseudo-labelled training set.

    Usage: ``MUDG(clip, prompts, descriptors).fit(train_set, test_set, out_dir="runs/pets")``.
    ``prompts`` (a :class:`~clipadapt.clip.DatasetPrompts`, as :class:`clipadapt.reclip.ReCLIP`
    takes it) gives the class names and the template, ``templates[0]`` (e.g. ``"a photo of a
    {}."``; MUDG prompts with one template, as ReCLIP-T does); it must start with
    ``config.context``. ``train_set`` yields (image tensor, pseudo label), typically with
    :func:`training_transform`; ``test_set`` yields (image tensor, label) with
    ``clip.preprocess``. ``descriptors`` are ranked descriptor strings as stored by the
    augmentation step (", which ..."); the first ``config.n_descriptors`` are used.
    ``clip.model`` is only moved to ``config.device``, never changed: it is the frozen
    teacher, and the student and its EMA are copies.
    """

    def __init__(self, clip: ClipModel, prompts: DatasetPrompts, descriptors: Sequence[str],
                 config: MUDGConfig | None = None):
        self.config = config or MUDGConfig()
        self.config.check()
        self.prompts = check_prompts(prompts)
        template = prompts.templates[0]
        check_template(template, self.config.context)
        check_standard_clip(clip.model)
        self.clip, self.classnames, self.template = clip, list(prompts.classnames), template
        self.descriptors = self._chosen_descriptors(descriptors)
        self.context_ids = context_token_ids(clip.model, clip.tokenizer, self.config.context)
        self.plain_tokens = tokenize_prompts(clip.tokenizer, self.plain_prompts(), self.context_ids)
        self.descriptor_tokens = self._tokenize(self.descriptor_prompts())
        self.evaluation_tokens = self._tokenize(self.descriptor_prompts(evaluation=True))
        self.student: PromptedCLIP | None = None
        self.ema: PromptedCLIP | None = None

    def _chosen_descriptors(self, descriptors: Sequence[str]) -> list[str]:
        if isinstance(descriptors, str) or not descriptors:
            raise ValueError("descriptors: give a list of at least one descriptor string (e.g. ', which is large.')")
        if not all(isinstance(d, str) and d.strip(", ") for d in descriptors):
            raise ValueError("descriptors: every descriptor must be a non-empty string")
        wanted = self.config.n_descriptors
        if len(descriptors) < wanted:
            log.info("descriptors: %d given, fewer than n_descriptors=%d; using all %d", len(descriptors), wanted,
                     len(descriptors))
        return list(descriptors[:wanted])

    def plain_prompts(self) -> list[str]:
        """``template.format(c)`` for every class: the "plain" evaluation prompts."""
        return [self.template.format(name) for name in self.classnames]

    def descriptor_prompts(self, *, evaluation: bool = False) -> list[list[str]]:
        """Per descriptor, the augmented prompt of every class ([n_descriptors][C] strings), for
        training or (``evaluation=True``) for evaluation."""
        cfg = self.config
        separate = evaluation and cfg.official_eval_commas
        return [[augmented_prompt(self.template, name, d, double_comma=cfg.double_comma, separate_commas=separate)
                 for name in self.classnames] for d in self.descriptors]

    def _tokenize(self, prompt_sets: list[list[str]]) -> torch.Tensor:
        """Token ids int64 [len(prompt_sets), C, context_length]."""
        tokenizer = self.clip.tokenizer
        return torch.stack([tokenize_prompts(tokenizer, prompts, self.context_ids) for prompts in prompt_sets])

    # ---- the loop ---------------------------------------------------------------------------

    def fit(self, train_set: Any, test_set: Any = None, *, out_dir: str | Path | None = None, resume: bool = False,
            progress: bool = True) -> MUDGResult:
        """Fine-tune for ``config.iterations`` steps; return the result (also written to
        ``out_dir/result.json`` with a plot ``out_dir/curves.png``). With ``resume=True`` the run
        continues from ``out_dir/checkpoint.pt`` and ends exactly as an uninterrupted run."""
        cfg = self.config
        if len(train_set) == 0:
            raise ValueError("train_set: is empty; MUDG needs pseudo-labelled training images")
        began = time.perf_counter()
        torch.manual_seed(cfg.seed)
        self._setup()
        out = Path(out_dir) if out_dir is not None else None
        start = self._restore(out) if resume and out is not None else 0
        self.seconds["setup"] = time.perf_counter() - began
        if test_set is not None and start == 0:
            self._record_evaluation(0, test_set, progress)
        self._train(train_set, test_set, start, out, progress)
        if test_set is not None and not any(e["iteration"] == cfg.iterations for e in self.evaluations):
            self._record_evaluation(cfg.iterations, test_set, progress)
        result = self._result()
        if out is not None:
            self._write_outputs(out, result)
        return result

    def _train(self, train_set: Any, test_set: Any, start: int, out: Path | None, progress: bool) -> None:
        cfg = self.config
        loader = torch.utils.data.DataLoader(
            _SeededViews(train_set, cfg.seed), num_workers=cfg.num_workers,
            batch_sampler=_IterationBatches(len(train_set), cfg.batch_size, cfg.seed, start, cfg.iterations))
        bar = tqdm(total=cfg.iterations, initial=start, desc="MUDG train", disable=not progress)
        tick = time.perf_counter()  # training time counts loading and steps, not evaluations or checkpoints
        for iteration, (images, labels) in enumerate(loader, start=start):
            self.losses.append(self._train_step(iteration, images, labels))
            self.seconds["train"] += time.perf_counter() - tick
            bar.update()
            bar.set_postfix(loss=f"{self.losses[-1]:.4f}")
            done = iteration + 1
            if test_set is not None and cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.iterations:
                self._record_evaluation(done, test_set, progress)
            if out is not None and (done % cfg.checkpoint_every == 0 or done == cfg.iterations):
                self._checkpoint(out, done)
            tick = time.perf_counter()
        bar.close()

    def _train_step(self, iteration: int, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One SGD step on the descriptor ``iteration mod n``; returns the loss."""
        cfg, student = self.config, self.student
        images, labels = images.to(cfg.device), torch.as_tensor(labels).long().to(cfg.device)
        _check_labels(labels, len(self.classnames), "train_set")
        descriptor = iteration % len(self.descriptors)
        with self._autocast():
            features = F.normalize(student.encode_image(images).float(), dim=1)
            text = F.normalize(student.encode_text(self.descriptor_tokens[descriptor]).float(), dim=1)
        loss = soft_cross_entropy(cfg.logit_scale * features @ text.T, self._targets(images, labels, descriptor))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        ema_update(self.ema, student, cfg.ema_decay)
        return loss.item()

    @torch.no_grad()
    def _targets(self, images: torch.Tensor, labels: torch.Tensor, descriptor: int) -> torch.Tensor:
        """Soft targets from the frozen initial model on the same augmented images (one-hot when λ = 0)."""
        cfg, classes = self.config, len(self.classnames)
        if cfg.mix == 0.0:
            return F.one_hot(labels, classes).float()
        with self._autocast():
            teacher_features = F.normalize(self.clip.model.encode_image(images).float(), dim=1)
        probabilities = teacher_probabilities(teacher_features, self.teacher_text[descriptor], cfg.teacher_temperature)
        return soft_targets(labels, probabilities, cfg.mix)

    # ---- set-up ------------------------------------------------------------------------------

    def _setup(self) -> None:
        """Student (a prompted copy of the model), its EMA, the optimiser and the frozen
        teacher's per-descriptor text features, all from the untouched ``clip.model``."""
        cfg = self.config
        teacher = self.clip.model.to(cfg.device)
        self.student = PromptedCLIP(copy.deepcopy(teacher), self.context_ids).to(cfg.device)
        backbone, prompt = select_trainable(self.student, cfg.vision_trainable_from, cfg.text_trainable_from)
        self.student.train()  # as the official loop (CLIP towers have no dropout by default)
        self.ema = copy.deepcopy(self.student).requires_grad_(False).eval()
        self.optimizer = torch.optim.SGD(
            [{"params": backbone, "lr": cfg.lr}, {"params": prompt, "lr": cfg.lr * cfg.prompt_lr_multiplier}],
            momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self._on_cuda() and cfg.amp == "fp16")
        self.plain_tokens = self.plain_tokens.to(cfg.device)
        self.descriptor_tokens = self.descriptor_tokens.to(cfg.device)
        self.evaluation_tokens = self.evaluation_tokens.to(cfg.device)
        self.teacher_text = self._teacher_text() if cfg.mix > 0.0 else None
        self.losses: list[float] = []
        self.evaluations: list[dict[str, float]] = []
        self.seconds = {"setup": 0.0, "train": 0.0, "evaluate": 0.0}
        self.trainable_count = sum(p.numel() for p in backbone + prompt)
        if cfg.amp is not None and not self._on_cuda():
            log.info("amp=%s applies on CUDA only; training in float32 on %s", cfg.amp, cfg.device)
        log.info("MUDG: %d classes, %d descriptors, %d trainable parameters", len(self.classnames),
                 len(self.descriptors), self.trainable_count)

    @torch.no_grad()
    def _teacher_text(self) -> torch.Tensor:
        """The frozen initial model's normalised class text features per descriptor, float32
        [n_descriptors, C, D] (its own token embeddings = the initial context)."""
        with self._autocast():
            return torch.stack([F.normalize(self.clip.model.encode_text(tokens).float(), dim=1)
                                for tokens in self.descriptor_tokens])

    def _on_cuda(self) -> bool:
        return str(self.config.device).startswith("cuda")

    def _autocast(self) -> Any:
        return autocast(self.config.amp, self.config.device)

    # ---- evaluation (always the EMA model) ---------------------------------------------------

    def evaluate(self, dataset: Any, *, progress: bool = False) -> dict[str, float]:
        """Accuracy (%) of the EMA model on (image, label) pairs: "plain" (``template.format(c)``
        with the learned context) and "descriptors" (score averaging: the class score is the
        mean over the descriptors of cos(f, t_c^d)). Before :meth:`fit`, the untouched model."""
        features, labels = self._image_features(dataset, progress)
        _check_labels(labels, len(self.classnames), "dataset")
        return {mode: 100.0 * (self._scores(features, mode).argmax(1) == labels).double().mean().item()
                for mode in ("plain", "descriptors")}

    def predict(self, dataset: Any, mode: Literal["descriptors", "plain"] = "descriptors", *,
                progress: bool = False) -> torch.Tensor:
        """Predicted classes (int64 [N], CPU) of the EMA model for the images of ``dataset``."""
        if mode not in ("descriptors", "plain"):
            raise ValueError(f"mode: use 'descriptors' or 'plain', got {mode!r}")
        features, _ = self._image_features(dataset, progress)
        return self._scores(features, mode).argmax(1).cpu()

    @torch.no_grad()
    def _image_features(self, dataset: Any, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised EMA image features (float32 [N, D]) and labels (int64 [N]) on the device."""
        if self.ema is None:
            self._setup()
        cfg = self.config
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
        features, labels = [], []
        for images, batch_labels in tqdm(loader, desc="MUDG evaluate", disable=not progress, leave=False):
            with self._autocast():
                features.append(F.normalize(self.ema.encode_image(images.to(cfg.device)).float(), dim=1))
            labels.append(torch.as_tensor(batch_labels).long())
        return torch.cat(features), torch.cat(labels).to(cfg.device)

    @torch.no_grad()
    def _scores(self, features: torch.Tensor, mode: str) -> torch.Tensor:
        """Class scores [N, C]. Averaging cosines over descriptors equals one product with the
        mean of the normalised descriptor embeddings (not renormalised)."""
        token_sets = [self.plain_tokens] if mode == "plain" else list(self.evaluation_tokens)
        with self._autocast():
            text = torch.stack([F.normalize(self.ema.encode_text(tokens).float(), dim=1) for tokens in token_sets])
        return features @ text.mean(0).T

    def _record_evaluation(self, iteration: int, dataset: Any, progress: bool) -> None:
        began = time.perf_counter()
        accuracy = self.evaluate(dataset, progress=progress)
        self.seconds["evaluate"] += time.perf_counter() - began
        self.evaluations.append({"iteration": iteration, **accuracy})
        log.info("MUDG iteration %d: plain %.2f%%, descriptors %.2f%%", iteration, accuracy["plain"],
                 accuracy["descriptors"])

    # ---- results and checkpoints --------------------------------------------------------------

    def _result(self) -> MUDGResult:
        by_iteration = {e["iteration"]: {"plain": e["plain"], "descriptors": e["descriptors"]}
                        for e in self.evaluations}
        return MUDGResult(
            **self.clip.identity(), classnames=self.classnames, template=self.template, descriptors=self.descriptors,
            config=self.config, trainable_parameters=self.trainable_count, zero_shot_accuracy=by_iteration.get(0),
            final_accuracy=by_iteration.get(self.config.iterations), evaluations=list(self.evaluations),
            loss_history=list(self.losses), seconds=dict(self.seconds))

    def _write_outputs(self, out: Path, result: MUDGResult) -> None:
        write_result(out, result.to_dict())
        plot_run(self.losses, self.evaluations, out / "curves.png", title=f"MUDG {self.clip.architecture}")

    def _state(self, iteration: int) -> dict[str, Any]:
        trainable = [name for name, p in self.student.named_parameters() if p.requires_grad]
        student, ema = dict(self.student.named_parameters()), dict(self.ema.named_parameters())
        return {"iteration": iteration, "config": asdict(self.config),
                "student": {name: student[name].detach().clone() for name in trainable},
                "ema": {name: ema[name].detach().clone() for name in trainable},
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
                "losses": list(self.losses), "evaluations": list(self.evaluations), "seconds": dict(self.seconds)}

    def _checkpoint(self, out: Path, iteration: int) -> None:
        save_checkpoint(self._state(iteration), out)

    def _restore(self, out: Path) -> int:
        """Load ``out/checkpoint.pt`` if present; returns the first iteration still to run.
        The checkpoint holds the trained parameters only: resume with the same ``clip``."""
        path = out / "checkpoint.pt"
        if not path.is_file():
            log.info("resume: no checkpoint in %s, starting from iteration 0", out)
            return 0
        state = torch.load(path, map_location=self.config.device, weights_only=False)
        self._check_resumable(state)
        for module, saved in ((self.student, state["student"]), (self.ema, state["ema"])):
            parameters = dict(module.named_parameters())
            with torch.no_grad():
                for name, value in saved.items():
                    parameters[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if state["rng"]["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        self.losses, self.evaluations = list(state["losses"]), list(state["evaluations"])
        self.seconds.update(train=state["seconds"]["train"], evaluate=state["seconds"]["evaluate"])
        log.info("resume: continuing after iteration %d from %s", state["iteration"], path)
        return state["iteration"]

    def _check_resumable(self, state: dict[str, Any]) -> None:
        current = asdict(self.config)
        changed = sorted(f.name for f in fields(MUDGConfig)
                         if f.name not in _RESUMABLE_CHANGES and state["config"][f.name] != current[f.name])
        if changed:
            raise ValueError(f"resume: the checkpoint was made with different settings ({', '.join(changed)}); "
                             "use the same config or a new out_dir")
        trainable = {name for name, p in self.student.named_parameters() if p.requires_grad}
        if set(state["student"]) != trainable:
            raise ValueError("resume: the checkpoint's trained parameters do not match this model; resume with "
                             "the same clip model")
        if state["iteration"] > self.config.iterations:
            raise ValueError(f"resume: the checkpoint is at iteration {state['iteration']}, past "
                             f"config.iterations={self.config.iterations}")


def plot_run(losses: Sequence[float], evaluations: Sequence[dict[str, float]], path: Path, *, title: str) -> None:
    """The training loss per iteration and the evaluated accuracies (plain, descriptors), as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, loss_axis = plt.subplots(figsize=(7, 4))
    loss_axis.plot(range(1, len(losses) + 1), losses, color="tab:gray", linewidth=1, label="loss")
    loss_axis.set(xlabel="iteration", ylabel="loss", title=title)
    loss_axis.grid(alpha=0.3)
    accuracy_axis = loss_axis.twinx()
    for mode, marker in (("plain", "o"), ("descriptors", "s")):
        accuracy_axis.plot([e["iteration"] for e in evaluations], [e[mode] for e in evaluations], marker=marker,
                           label=f"accuracy ({mode})")
    accuracy_axis.set_ylabel("accuracy (%)")
    handles = [h for axis in (loss_axis, accuracy_axis) for h in axis.get_legend_handles_labels()[0]]
    loss_axis.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def _check_labels(labels: torch.Tensor, classes: int, argument: str) -> None:
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise ValueError(f"{argument}: labels must lie in [0, {classes}) for the {classes} classnames, got "
                         f"[{int(labels.min())}, {int(labels.max())}]")
