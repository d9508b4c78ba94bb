"""MUDG fine-tuning on tiny random CLIPs: the soft-target loss against float64
NumPy, the learnable prompt, the trainable parameter set, the teacher, descriptor cycling, EMA
evaluation, exact resume, outputs and input validation."""
import copy
import json
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clipadapt.clip import DatasetPrompts, load_clip, register_model_config
from clipadapt.mudg.augment import augmented_prompt
from clipadapt.mudg.prompt import PromptedCLIP, context_token_ids, tokenize_prompts
from clipadapt.mudg.train import (MUDG, MUDGConfig, MUDGResult, batch_indices, ema_update, select_trainable,
                                  soft_cross_entropy, soft_targets, teacher_probabilities, training_transform)


def tiny_config(layers):
    return {"embed_dim": 32, "vision_cfg": {"image_size": 16, "layers": layers, "width": 64, "patch_size": 8},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": layers}}


CLASSES = ["red", "green", "blue"]
TEMPLATE = "a photo of a {}."
DESCRIPTORS = [", which is bright.", ", which is dark.", ", which may be large or small."]


class NoisyColours(torch.utils.data.Dataset):
    """16x16 images whose dominant channel is the label, with fresh noise at every access (a
    random "augmentation" drawn from torch's generator)."""

    def __init__(self, n=30, label_offset=0):
        self.labels = torch.arange(n) % 3 + label_offset
        self.base = torch.full((n, 3, 16, 16), -0.5)
        self.base[torch.arange(n), torch.arange(n) % 3] = 1.0

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.base[index] + 0.3 * torch.randn(3, 16, 16), int(self.labels[index])


def fixed_noisy_colours(n):
    """A test set: NoisyColours with its noise drawn once."""
    noise = 0.3 * torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    return torch.utils.data.TensorDataset(NoisyColours(n).base + noise, NoisyColours(n).labels)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models are tiny: one thread is faster than two that contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_clip():
    register_model_config("clipadapt-mudg-tiny", tiny_config(2))
    torch.manual_seed(0)
    return load_clip("clipadapt-mudg-tiny")


def config(**changes):
    settings = {"iterations": 4, "batch_size": 8, "lr": 0.05, "vision_trainable_from": 1, "text_trainable_from": 1,
                "n_descriptors": 3, "checkpoint_every": 2}
    return MUDGConfig(**{**settings, **changes})


def prompts(classes=CLASSES, template=TEMPLATE):
    return DatasetPrompts("colours", classes, [template])


def trainer(clip, **changes):
    return MUDG(clip, prompts(), DESCRIPTORS, config(**changes))


# ---- the objective ------------------------------------------------------------------------------

def numpy_softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def unit_rows(generator, rows, dim=8):
    return F.normalize(torch.randn(rows, dim, generator=generator), dim=1)


def test_soft_targets_mix_onehot_and_teacher():
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([2, 0, 1, 2])
    teacher = torch.softmax(torch.randn(4, 3, generator=generator), dim=1)
    expected = 0.8 * np.eye(3)[labels.numpy()] + 0.2 * teacher.numpy().astype(np.float64)
    np.testing.assert_allclose(soft_targets(labels, teacher, 0.2).numpy(), expected, rtol=1e-6)
    assert torch.allclose(soft_targets(labels, teacher, 0.2).sum(1), torch.ones(4))


def test_loss_matches_float64_reference():
    generator = torch.Generator().manual_seed(1)
    f, t, f0, t0 = (unit_rows(generator, rows) for rows in (6, 5, 6, 5))
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    probabilities = teacher_probabilities(f0, t0, 10.0)
    loss = soft_cross_entropy(25.0 * f @ t.T, soft_targets(labels, probabilities, 0.2))

    f, t, f0, t0 = (x.double().numpy() for x in (f, t, f0, t0))
    p0 = numpy_softmax(10.0 * f0 @ t0.T)
    target = 0.8 * np.eye(5)[labels.numpy()] + 0.2 * p0
    logits = 25.0 * f @ t.T
    log_probabilities = logits - logits.max(1, keepdims=True)
    log_probabilities -= np.log(np.exp(log_probabilities).sum(1, keepdims=True))
    reference = np.mean(-(target * log_probabilities).sum(1))
    np.testing.assert_allclose(probabilities.numpy(), p0, rtol=1e-5, atol=1e-7)
    assert loss.item() == pytest.approx(reference, rel=1e-5)


def test_mix_zero_is_cross_entropy():
    generator = torch.Generator().manual_seed(2)
    logits, labels = 5 * torch.randn(7, 4, generator=generator), torch.randint(0, 4, (7,), generator=generator)
    teacher = torch.softmax(torch.randn(7, 4, generator=generator), dim=1)
    assert soft_cross_entropy(logits, soft_targets(labels, teacher, 0.0)).item() == pytest.approx(
        F.cross_entropy(logits, labels).item(), rel=1e-6)


def test_ema_update_formula_on_trained_parameters_only():
    model = torch.nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    ema = copy.deepcopy(model).requires_grad_(False)
    with torch.no_grad():
        model.weight.add_(1.0)
        model.bias.add_(1.0)
    before = ema.weight.clone()
    ema_update(ema, model, 0.9)
    assert torch.allclose(ema.weight, 0.9 * before + 0.1 * model.weight, rtol=0, atol=1e-7)
    assert not torch.equal(ema.bias, model.bias), "a frozen parameter is constant, so it is left as it was"
    with pytest.raises(ValueError, match="ema"):
        ema_update(torch.nn.Sequential(ema), model, 0.9)


# ---- prompts and the learnable context -------------------------------------------------------------

def test_descriptor_prompt_keeps_the_official_double_comma():
    assert augmented_prompt(TEMPLATE, "cow", ", which has legs.", double_comma=True) == \
        "a photo of a cow,, which has legs."
    assert augmented_prompt(TEMPLATE, "cow", ", which has legs.") == "a photo of a cow, which has legs."
    assert augmented_prompt("a photo of {}, a type of pet.", "a pug", " which is small.") == \
        "a photo of a pug, a type of pet, which is small."
    assert augmented_prompt(TEMPLATE, "cow", ", which has legs.", double_comma=True, separate_commas=True) == \
        "a photo of a cow, , which has legs."


def test_separate_commas_give_the_official_evaluation_tokens(tiny_clip):
    """The official evaluation replaces the full stop's token by a comma token and inserts the
    descriptor's tokens (without start and end tokens) after it."""
    tokenizer = tiny_clip.tokenizer
    plain, descriptor = tokenizer([TEMPLATE.format("cow")])[0], tokenizer([DESCRIPTORS[2]])[0]
    plain_end, descriptor_end = int(plain.argmax()), int(descriptor.argmax())
    comma = tokenizer([","])[0, 1]
    official = torch.cat([plain[:plain_end - 1], comma[None], descriptor[1:descriptor_end], plain[plain_end:][:1]])
    ours = tokenizer([augmented_prompt(TEMPLATE, "cow", DESCRIPTORS[2], double_comma=True, separate_commas=True)])[0]
    assert torch.equal(ours[:len(official)], official) and not ours[len(official):].any()
    merged = tokenizer([augmented_prompt(TEMPLATE, "cow", DESCRIPTORS[2], double_comma=True)])[0]
    assert int(merged.argmax()) == len(official) - 2, "in training ',,' is a single token"


def test_prompted_encoder_equals_encode_text_at_init_and_context_gets_gradient(tiny_clip):
    model = copy.deepcopy(tiny_clip.model)
    ids = context_token_ids(model, tiny_clip.tokenizer, "a photo of")
    assert ids.tolist()[1:] == tiny_clip.tokenizer(["a photo of"])[0, 1:4].tolist()
    prompted = PromptedCLIP(model, ids)
    assert prompted.n_ctx == 3
    tokens = tokenize_prompts(tiny_clip.tokenizer, [augmented_prompt(TEMPLATE, c, DESCRIPTORS[2], double_comma=True) for c in CLASSES],
                              ids)
    with torch.no_grad():
        assert torch.allclose(prompted.encode_text(tokens), model.encode_text(tokens), atol=1e-6)
    select_trainable(prompted, 2, 2)  # no block trains: the gradient must still cross them
    prompted.encode_text(tokens).square().sum().backward()
    assert prompted.context.grad is not None and prompted.context.grad.abs().sum() > 0
    assert model.token_embedding.weight.grad is None


def test_trainable_parameters_exactly_as_specified():
    register_model_config("clipadapt-mudg-three", tiny_config(3))
    clip = load_clip("clipadapt-mudg-three")
    mudg = MUDG(clip, prompts(), DESCRIPTORS, config(vision_trainable_from=1, text_trainable_from=1))
    mudg._setup()
    trainable = {name for name, p in mudg.student.named_parameters() if p.requires_grad}
    prefixes = ("model.visual.transformer.resblocks.1.", "model.visual.transformer.resblocks.2.",
                "model.visual.ln_post.", "model.transformer.resblocks.1.", "model.transformer.resblocks.2.",
                "model.ln_final.")
    expected = {name for name, _ in mudg.student.named_parameters() if name.startswith(prefixes)}
    expected |= {"model.visual.proj", "model.text_projection", "context"}
    assert trainable == expected
    groups = mudg.optimizer.param_groups
    assert [g["lr"] for g in groups] == [pytest.approx(0.05), pytest.approx(0.5)]
    assert groups[1]["params"] == [mudg.student.context]
    assert all(g["momentum"] == 0.9 and g["weight_decay"] == 1e-5 for g in groups)
    with pytest.raises(ValueError, match="vision_trainable_from"):
        select_trainable(mudg.student, 4, 1)


# ---- the training loop ------------------------------------------------------------------------------

def test_teacher_sees_the_student_view_and_stays_frozen(tiny_clip):
    calls = []
    handle = tiny_clip.model.visual.register_forward_hook(
        lambda module, inputs, output: calls.append((module, inputs[0].detach().clone())))
    original = copy.deepcopy(tiny_clip.model.state_dict())
    try:  # the hook is copied into the student, so each step records the student's and the teacher's input
        mudg = trainer(tiny_clip, iterations=3)
        mudg.fit(NoisyColours(), progress=False)
    finally:
        handle.remove()
    teacher = [images for module, images in calls if module is tiny_clip.model.visual]
    student = [images for module, images in calls if module is mudg.student.model.visual]
    assert len(teacher) == len(student) == 3
    for seen_by_teacher, seen_by_student in zip(teacher, student):
        assert torch.equal(seen_by_teacher, seen_by_student)
    assert all(torch.equal(value, original[name]) for name, value in tiny_clip.model.state_dict().items())
    assert not torch.equal(mudg.student.context, mudg.ema.context)


def test_descriptors_cycle_with_the_iteration(tiny_clip, monkeypatch):
    encoded = []
    encode_text = PromptedCLIP.encode_text
    monkeypatch.setattr(PromptedCLIP, "encode_text", lambda self, tokens: encoded.append(tokens) or
                        encode_text(self, tokens))
    mudg = trainer(tiny_clip, iterations=5)
    mudg.fit(NoisyColours(), progress=False)
    for iteration, tokens in enumerate(encoded):
        descriptor = DESCRIPTORS[iteration % 3]
        expected = tiny_clip.tokenizer([f"a photo of a {c},{descriptor}" for c in CLASSES])
        assert torch.equal(tokens, expected), iteration
    assert len(encoded) == 5
    with torch.no_grad():
        expected_teacher = F.normalize(tiny_clip.model.encode_text(mudg.descriptor_tokens[1]), dim=1)
    assert torch.allclose(mudg.teacher_text[1], expected_teacher, atol=1e-6)


def test_batch_order_is_a_pure_function_with_drop_last():
    first_pass = [batch_indices(10, 4, 7, iteration) for iteration in range(2)]
    assert all(len(batch) == 4 for batch in first_pass)
    assert len(torch.cat(first_pass).unique()) == 8, "one pass: 10 // 4 = 2 disjoint batches, 2 items dropped"
    assert torch.equal(batch_indices(10, 4, 7, 1), first_pass[1])
    assert not torch.equal(batch_indices(10, 4, 7, 2), first_pass[0]), "the next pass is a new permutation"
    assert not torch.equal(batch_indices(10, 4, 8, 0), first_pass[0])
    assert sorted(batch_indices(5, 8, 0, 3).tolist()) == [0, 1, 2, 3, 4], "a small set fills every batch"


def test_training_views_depend_on_seed_iteration_and_index_only(tiny_clip):
    in_process = trainer(tiny_clip, iterations=3).fit(NoisyColours(), progress=False)
    torch.manual_seed(123)  # the global generator's state must not matter either
    in_workers = trainer(tiny_clip, iterations=3, num_workers=2).fit(NoisyColours(), progress=False)
    assert in_workers.loss_history == in_process.loss_history


def test_evaluation_uses_the_ema_model(tiny_clip):
    mudg = trainer(tiny_clip, iterations=3, lr=0.5)
    test_set = fixed_noisy_colours(30)
    mudg.fit(NoisyColours(), progress=False)
    with torch.no_grad():
        features = F.normalize(mudg.ema.encode_image(test_set.tensors[0]), dim=1)
        text = torch.stack([F.normalize(mudg.ema.encode_text(t), dim=1) for t in mudg.evaluation_tokens])
        scores = torch.einsum("nd,kcd->nkc", features, text).mean(1)  # the mean over descriptors of cosines
        plain = features @ F.normalize(mudg.ema.encode_text(mudg.plain_tokens), dim=1).T
    assert torch.equal(mudg.predict(test_set), scores.argmax(1))
    assert torch.equal(mudg.predict(test_set, "plain"), plain.argmax(1))
    accuracy = mudg.evaluate(test_set)
    assert accuracy["descriptors"] == pytest.approx(100 * (scores.argmax(1) == test_set.tensors[1]).double().mean())
    with torch.no_grad():
        for parameter in mudg.student.parameters():
            parameter.normal_()
    assert mudg.evaluate(test_set) == accuracy
    as_trained = trainer(tiny_clip, official_eval_commas=False)
    assert not torch.equal(mudg.evaluation_tokens, mudg.descriptor_tokens)
    assert torch.equal(as_trained.evaluation_tokens, as_trained.descriptor_tokens)


def test_fit_writes_result_plot_and_checkpoint(tiny_clip, tmp_path):
    test_set = fixed_noisy_colours(12)
    result = trainer(tiny_clip, iterations=4, eval_every=2).fit(NoisyColours(), test_set, out_dir=tmp_path,
                                                                progress=False)
    stored = json.loads((tmp_path / "result.json").read_text())
    assert isinstance(result, MUDGResult) and stored == json.loads(json.dumps(result.to_dict()))
    assert (stored["method"], stored["classes"], stored["classnames"]) == ("MUDG", 3, CLASSES)
    assert [e["iteration"] for e in stored["evaluations"]] == [0, 2, 4]
    assert stored["zero_shot_accuracy"] == {k: stored["evaluations"][0][k] for k in ("plain", "descriptors")}
    assert stored["final_accuracy"] == {k: stored["evaluations"][-1][k] for k in ("plain", "descriptors")}
    assert len(stored["loss_history"]) == 4 and all(np.isfinite(stored["loss_history"]))
    assert stored["config"]["mix"] == 0.2 and stored["descriptors"] == DESCRIPTORS
    assert set(stored["seconds"]) == {"setup", "train", "evaluate"}
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["iteration"] == 4


def test_training_fits_separable_pseudo_labels(tiny_clip):
    mudg = trainer(tiny_clip, iterations=30, lr=0.03, mix=0.0, ema_decay=0.5)
    result = mudg.fit(NoisyColours(n=48), fixed_noisy_colours(48), progress=False)
    assert result.final_accuracy["descriptors"] >= 90.0, result.evaluations
    assert np.mean(result.loss_history[-5:]) < 0.7 * np.mean(result.loss_history[:5]), result.loss_history


class Interrupted(Exception):
    pass


def test_resume_reproduces_an_uninterrupted_run(tiny_clip, tmp_path, monkeypatch):
    test_set = fixed_noisy_colours(12)
    straight = trainer(tiny_clip, iterations=5)
    expected = straight.fit(NoisyColours(), test_set, out_dir=tmp_path / "straight", progress=False)

    train_step = MUDG._train_step

    def crash_at_iteration_3(self, iteration, images, labels):
        if iteration == 3:
            raise Interrupted
        return train_step(self, iteration, images, labels)

    monkeypatch.setattr(MUDG, "_train_step", crash_at_iteration_3)
    with pytest.raises(Interrupted):
        trainer(tiny_clip, iterations=5).fit(NoisyColours(), test_set, out_dir=tmp_path / "resumed", progress=False)
    resumed_iterations = []

    def count(self, iteration, images, labels):
        resumed_iterations.append(iteration)
        return train_step(self, iteration, images, labels)

    monkeypatch.setattr(MUDG, "_train_step", count)
    resumed = trainer(tiny_clip, iterations=5)
    result = resumed.fit(NoisyColours(), test_set, out_dir=tmp_path / "resumed", resume=True, progress=False)

    assert resumed_iterations == [2, 3, 4], "continues after the checkpoint of iteration 2"
    assert result.loss_history == expected.loss_history
    assert result.evaluations == expected.evaluations
    for (name, value), other in zip(resumed.ema.state_dict().items(), straight.ema.state_dict().values()):
        assert torch.equal(value, other), name
    with pytest.raises(ValueError, match="mix"):
        trainer(tiny_clip, iterations=5, mix=0.5).fit(NoisyColours(), out_dir=tmp_path / "resumed", resume=True,
                                                      progress=False)


# ---- transforms and input validation --------------------------------------------------------------------

def test_training_transform_from_the_test_preprocess(tiny_clip):
    transforms = __import__("torchvision").transforms
    flipped = training_transform(tiny_clip.preprocess)
    steps = [type(step).__name__ for step in flipped.transforms]
    assert steps[:2] == ["RandomResizedCrop", "RandomHorizontalFlip"] and steps[-1] == "Normalize"
    assert flipped.transforms[0].size == (16, 16)
    assert not any(isinstance(s, (transforms.Resize, transforms.CenterCrop)) for s in flipped.transforms)
    plain = training_transform(tiny_clip.preprocess, horizontal_flip=False)
    assert "RandomHorizontalFlip" not in [type(step).__name__ for step in plain.transforms]
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8))
    assert plain(image).shape == (3, 16, 16)
    with pytest.raises(ValueError, match="preprocess"):
        training_transform(lambda image: image)


def test_numpy_scalars_in_the_config_are_python_numbers():
    settings = config(iterations=np.int64(4), batch_size=np.int32(8), lr=np.float32(0.5))
    assert (type(settings.iterations), type(settings.batch_size), type(settings.lr)) == (int, int, float)


def test_bad_inputs(tiny_clip, caplog):
    with pytest.raises(ValueError, match="prompts: need at least 2 classes"):
        MUDG(tiny_clip, prompts(classes=["only"]), DESCRIPTORS, config())
    for template, fix in (("the photo of a {}.", "context"), ("a photo of a {}", "punctuation"),
                          ("a photo of a {} {}.", "exactly one")):
        with pytest.raises(ValueError, match=fix):
            MUDG(tiny_clip, prompts(template=template), DESCRIPTORS, config())
    with pytest.raises(ValueError, match="tokenise"):
        MUDG(tiny_clip, prompts(template="a photo ofa {}."), DESCRIPTORS, config(context="a photo of"))
    for descriptors in ([], ", which is big.", [", "]):
        with pytest.raises(ValueError, match="descriptors"):
            MUDG(tiny_clip, prompts(), descriptors, config())
    for field, value in (("mix", 1.5), ("iterations", 0), ("ema_decay", 1.0), ("amp", "fp8"), ("eval_every", 0)):
        with pytest.raises(ValueError, match=field):
            MUDG(tiny_clip, prompts(), DESCRIPTORS, config(**{field: value}))
    with pytest.raises(TypeError, match="standard CLIP"):
        not_clip = type(tiny_clip)(torch.nn.Linear(2, 2), None, tiny_clip.tokenizer, "x", "random", "gelu")
        MUDG(not_clip, prompts(), DESCRIPTORS, config())
    mudg = trainer(tiny_clip, iterations=1)
    with pytest.raises(ValueError, match="train_set: is empty"):
        mudg.fit(torch.utils.data.TensorDataset(torch.zeros(0, 3, 16, 16), torch.zeros(0)), progress=False)
    with pytest.raises(ValueError, match=r"train_set: labels must lie in \[0, 3\)"):
        mudg.fit(NoisyColours(label_offset=1), progress=False)
    with pytest.raises(ValueError, match=r"dataset: labels must lie in \[0, 3\)"):
        mudg.evaluate(NoisyColours(label_offset=-1))
    with pytest.raises(ValueError, match="mode"):
        mudg.predict(NoisyColours(), mode="ensemble")
    with caplog.at_level(logging.INFO, logger="clipadapt.mudg.train"):
        assert MUDG(tiny_clip, prompts(), DESCRIPTORS, config(n_descriptors=8)).descriptors == DESCRIPTORS
    assert "fewer than n_descriptors=8" in caplog.text
    assert MUDG(tiny_clip, prompts(), DESCRIPTORS, config(n_descriptors=2)).descriptors == DESCRIPTORS[:2]


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_evaluation_transform_sets_the_resize_interpolation(tiny_clip, interpolation):
    from PIL import Image

    from clipadapt.mudg.train import evaluation_transform

    transform = evaluation_transform(tiny_clip.preprocess, interpolation=interpolation)
    resize = transform.transforms[0]
    assert resize.interpolation.value == interpolation and resize.size == tiny_clip.preprocess.transforms[0].size
    image = Image.new("RGB", (40, 30), color=(200, 10, 10))
    assert transform(image).shape == tiny_clip.preprocess(image).shape
    with pytest.raises(ValueError, match="interpolation"):
        evaluation_transform(tiny_clip.preprocess, interpolation="nearest")
