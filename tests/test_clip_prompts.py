"""Per-dataset class names and CLIP prompt templates (clipadapt.clip.prompts)."""
import dataclasses
from collections import Counter

import pytest

from clipadapt.clip.prompts import (ALIASES, CLIP_VARIANTS, DATASETS, DatasetPrompts, from_folder, get_prompts,
                                    imagenet_wnids, match_folder, prompts_for_folder)

# (classes, templates) per ReCLIP dataset key: the counts of ReCLIP's prompt file (the CLIP variant has ImageNet's 80).
EXPECTED_SIZES = {
    "aid": (30, 18),
    "birdsnap": (500, 1),
    "caltech101": (101, 34),
    "cifar10": (10, 18),
    "cifar100": (100, 18),
    "country211": (211, 5),
    "dtd": (47, 8),
    "eurosat": (10, 3),
    "fer2013": (7, 6),
    "fgvc": (100, 2),
    "flowers102": (102, 1),
    "food101": (101, 1),
    "gtsrb": (43, 3),
    "imagenet": (1000, 81),
    "mnist": (10, 1),
    "office_a": (31, 1),
    "office_d": (31, 1),
    "office_w": (31, 1),
    "office_ar": (65, 1),
    "office_cl": (65, 1),
    "office_pr": (65, 1),
    "office_rw": (65, 1),
    "oxford_pets": (37, 1),
    "pcam": (2, 1),
    "renderedsst2": (2, 1),
    "resisc45": (45, 18),
    "standford_cars": (196, 8),
    "stl10": (10, 2),
    "sun397": (397, 2),
}

# CLIP's ImageNet names are not all distinct (classes 657/744 and 836/837); kept verbatim.
IMAGENET_DUPLICATES = {"missile": [657, 744], "sunglasses": [836, 837]}

OFFICE_HOME_FOLDERS = [
    "Alarm_Clock", "Backpack", "Batteries", "Bed", "Bike", "Bottle", "Bucket", "Calculator", "Calendar", "Candles",
    "Chair", "Clipboards", "Computer", "Couch", "Curtains", "Desk_Lamp", "Drill", "Eraser", "Exit_Sign", "Fan",
    "File_Cabinet", "Flipflops", "Flowers", "Folder", "Fork", "Glasses", "Hammer", "Helmet", "Kettle", "Keyboard",
    "Knives", "Lamp_Shade", "Laptop", "Marker", "Monitor", "Mop", "Mouse", "Mug", "Notebook", "Oven", "Pan",
    "Paper_Clip", "Pen", "Pencil", "Postit_Notes", "Printer", "Push_Pin", "Radio", "Refrigerator", "Ruler", "Scissors",
    "Screwdriver", "Shelf", "Sink", "Sneakers", "Soda", "Speaker", "Spoon", "TV", "Table", "Telephone", "ToothBrush",
    "Toys", "Trash_Can", "Webcam",
]


def test_registry_holds_exactly_the_reclip_datasets():
    assert set(DATASETS) == set(EXPECTED_SIZES)
    for key, entry in DATASETS.items():
        assert entry.name == key


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_class_and_template_counts(name):
    entry = DATASETS[name]
    assert (len(entry.classnames), len(entry.templates)) == EXPECTED_SIZES[name]
    assert entry.num_classes == EXPECTED_SIZES[name][0]
    assert isinstance(entry.classnames, tuple) and isinstance(entry.templates, tuple)


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_every_template_has_exactly_one_placeholder(name):
    for template in DATASETS[name].templates:
        assert template.count("{}") == 1, template
        assert "{" not in template.replace("{}", "") and "}" not in template.replace("{}", ""), template
    repeated = {t for t, n in Counter(DATASETS[name].templates).items() if n > 1}
    assert repeated == ({"a photo of a {}."} if name == "imagenet" else set())  # ReCLIP's file lists it twice
    assert len(set(CLIP_VARIANTS[name].templates)) == len(CLIP_VARIANTS[name].templates)


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_class_names_are_distinct_clean_strings(name):
    classnames = DATASETS[name].classnames
    assert all(isinstance(c, str) and c and c == c.strip() and c.isascii() for c in classnames)
    duplicates = {c: [i for i, x in enumerate(classnames) if x == c] for c, n in Counter(classnames).items() if n > 1}
    assert duplicates == (IMAGENET_DUPLICATES if name == "imagenet" else {})


def test_prompts_formats_every_template_with_one_class():
    cifar = DATASETS["cifar10"]
    prompts = cifar.prompts(0)
    assert len(prompts) == 18
    assert prompts[0] == "a photo of a airplane." and prompts[-1] == "a photo of the big airplane."
    assert prompts == [t.format("airplane") for t in cifar.templates]
    assert DATASETS["gtsrb"].prompts(14)[0] == 'a zoomed in photo of a "stop" traffic sign.'
    assert DATASETS["mnist"].prompts(7) == ['a photo of the number: "7".']
    with pytest.raises(IndexError):
        cifar.prompts(10)
    with pytest.raises(IndexError):
        cifar.prompts(-1)
    with pytest.raises(TypeError):
        cifar.prompts(1.0)


@pytest.mark.parametrize("name", sorted(EXPECTED_SIZES))
def test_first_prompts_use_the_first_template_for_every_class(name):
    entry = DATASETS[name]
    first = entry.first_prompts()
    assert first == [entry.templates[0].format(c) for c in entry.classnames]
    assert all("{}" not in prompt and "[" not in prompt for prompt in first)
    assert [entry.prompts(i)[0] for i in range(min(entry.num_classes, 5))] == first[:5]


def test_reclip_t_single_template_prompts():
    assert DATASETS["imagenet"].first_prompts()[:2] == ["a photo of a tench.", "a photo of a goldfish."]
    assert DATASETS["birdsnap"].first_prompts()[0] == "a photo of a Acadian Flycatcher, a type of bird."
    assert DATASETS["office_rw"].first_prompts()[0] == "a photo of a Alarm Clock."
    # FER2013: the first synonyms (the trainer decides whether ReCLIP-T formats the list instead)
    assert DATASETS["fer2013"].first_prompts() == [
        f"a photo of a {e} looking face." for e in ("angry", "disgusted", "fearful", "happy", "sad", "surprised",
                                                     "neutral")]


def test_imagenet_templates_are_clips_80_with_the_plain_photo_first():
    templates = CLIP_VARIANTS["imagenet"].templates
    assert templates[0] == "a photo of a {}."
    assert templates[1:4] == ("a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.")
    assert templates[-1] == "a tattoo of the {}."
    assert {"itap of a {}.", "a origami {}.", "a photo of the large {}.", "art of the {}."} <= set(templates)


def test_released_imagenet_templates_prepend_the_plain_photo_to_clips_order():
    released = DATASETS["imagenet"].templates
    assert released[0] == released[40] == "a photo of a {}."
    assert released[1:4] == ("a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.")
    assert sorted(released[1:]) == sorted(CLIP_VARIANTS["imagenet"].templates)
    assert get_prompts("imagenet") is DATASETS["imagenet"]
    assert get_prompts("imagenet", "clip") is CLIP_VARIANTS["imagenet"]


def test_label_orders_follow_the_standard_loaders():
    assert DATASETS["caltech101"].classnames[:3] == ("human face", "ID photo", "leopard")
    assert CLIP_VARIANTS["caltech101"].classnames[:3] == ("off-center face", "centered face", "leopard")
    assert DATASETS["eurosat"].classnames[0] == "annual crop land"
    assert DATASETS["eurosat"].classnames[-1] == "lake or sea"
    assert DATASETS["oxford_pets"].classnames[:3] == ("Abyssinian", "american bulldog", "american pit bull terrier")
    assert DATASETS["fer2013"].classnames == ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")
    assert DATASETS["country211"].classnames[:2] == ("Andorra", "United Arab Emirates")
    assert DATASETS["imagenet"].classnames[21] == "kite (bird of prey)"
    assert DATASETS["standford_cars"].classnames[0] == "AM General Hummer SUV 2000"
    assert DATASETS["aid"].classnames[25:29] == ("SparseResidential", "Square", "Stadium", "StorageTanks")
    assert CLIP_VARIANTS["aid"].classnames[25:29] == ("Sparse Residential", "Square", "Stadium", "Storage Tanks")
    for name in ("birdsnap", "dtd", "food101", "fgvc", "resisc45", "sun397", "cifar100"):
        assert list(DATASETS[name].classnames) == sorted(DATASETS[name].classnames), name


def test_pcam_templates_of_both_variants():
    assert DATASETS["pcam"].templates == ("this is a medical image of {}",)
    assert CLIP_VARIANTS["pcam"].templates == ("this is a photo of {}",)


def test_variants_differ_only_where_the_sources_do():
    differing = {key for key in DATASETS if DATASETS[key] != CLIP_VARIANTS[key]}
    assert differing == {"aid", "caltech101", "imagenet", "office_a", "office_d", "office_w", "pcam"}
    with pytest.raises(ValueError, match="variant"):
        get_prompts("cifar10", "openai")


def test_fer2013_ensembles_every_synonym_with_every_template():
    fer = DATASETS["fer2013"]
    assert fer.synonyms[5] == ("surprised", "shocked", "spooked") and fer.classnames[5] == "surprised"
    assert fer.prompts(3)[:3] == ["a photo of a happy looking face.", "a photo of a smiling looking face.",
                                  "a photo of a face showing the emotion: happy."]
    assert len(fer.prompts(5)) == 3 * len(fer.templates) and len(fer.prompts(0)) == len(fer.templates)
    assert fer.classes_with_synonyms[3] == ("happy", "smiling")
    assert DATASETS["cifar10"].classes_with_synonyms == DATASETS["cifar10"].classnames
    with pytest.raises(ValueError, match="synonyms"):
        DatasetPrompts("x", ("a", "b"), ("{}",), (("a",), ("c", "b")))


def test_letter_case_is_not_seen_by_clips_tokenizer():
    import open_clip

    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    capitalised, lower = tokenizer(["A photo of a American Bulldog.", "a photo of a american bulldog."])
    assert capitalised.tolist() == lower.tolist()


def test_office_domains_share_their_classes():
    office31 = {DATASETS[k].classnames for k in ("office_a", "office_d", "office_w")}
    office_home = {DATASETS[k].classnames for k in ("office_ar", "office_cl", "office_pr", "office_rw")}
    assert len(office31) == 1 and len(office_home) == 1
    assert DATASETS["office_a"].classnames[:3] == ("back_pack", "bike", "bike_helmet")
    assert CLIP_VARIANTS["office_a"].classnames[:3] == ("back pack", "bike", "bike helmet")
    assert from_folder(OFFICE_HOME_FOLDERS).classnames == DATASETS["office_ar"].classnames
    for key in ("office_a", "office_d", "office_w", "office_ar", "office_cl", "office_pr", "office_rw"):
        assert DATASETS[key].templates == ("a photo of a {}.",)


def test_unknown_dataset_raises_key_error_naming_the_known_ones():
    with pytest.raises(KeyError, match="unknown dataset 'no_such_set'") as info:
        get_prompts("no_such_set")
    message = str(info.value)
    for name in [*DATASETS, *ALIASES]:
        assert name in message
    with pytest.raises(TypeError):
        get_prompts(None)


def test_get_prompts_and_aliases():
    assert get_prompts("cifar10") is DATASETS["cifar10"]
    assert ALIASES == {"stanford_cars": "standford_cars"}
    assert get_prompts("stanford_cars") is DATASETS["standford_cars"]
    assert get_prompts("standford_cars") is DATASETS["standford_cars"]
    assert get_prompts("Stanford-Cars") is DATASETS["standford_cars"]
    assert get_prompts(" Oxford-Pets ") is DATASETS["oxford_pets"]
    assert "stanford_cars" not in DATASETS  # the registry keeps ReCLIP's keys only


def test_from_folder():
    prompts = from_folder(["Alarm_Clock", "back_pack", "TV"])
    assert prompts.classnames == ("Alarm Clock", "back pack", "TV")
    assert prompts.templates == ("a photo of a {}.",)
    assert prompts.name == "folder"
    assert prompts.first_prompts() == ["a photo of a Alarm Clock.", "a photo of a back pack.", "a photo of a TV."]
    custom = from_folder(("cat", "dog"), templates=["a {} photo.", "itap of a {}."], name="pets")
    assert custom.name == "pets" and custom.templates == ("a {} photo.", "itap of a {}.")
    assert custom.prompts(1) == ["a dog photo.", "itap of a dog."]
    assert from_folder(iter(["x_y"])).classnames == ("x y",)
    with pytest.raises(TypeError):
        from_folder("cat_dog")
    with pytest.raises(ValueError, match="duplicate"):
        from_folder(["a_b", "a b"])
    with pytest.raises(ValueError):
        from_folder([])
    with pytest.raises(ValueError):
        from_folder(["_"])
    with pytest.raises(ValueError, match="exactly one"):
        from_folder(["cat"], templates=["a photo."])
    with pytest.raises(ValueError, match="exactly one"):
        from_folder(["cat"], templates=["a {} and a {}."])
    with pytest.raises(ValueError, match="exactly one"):
        from_folder(["cat"], templates=["a {0} photo."])


def test_dataset_prompts_is_frozen_and_validates():
    entry = DatasetPrompts("x", ["a", "b"], ["{}"])
    assert entry.classnames == ("a", "b") and entry.templates == ("{}",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.name = "y"
    with pytest.raises(TypeError):
        DatasetPrompts("x", "ab", ("{}",))
    with pytest.raises(TypeError):
        DatasetPrompts("x", ("a", 1), ("{}",))
    with pytest.raises(ValueError):
        DatasetPrompts("x", ("a",), ())
    # braces in a class name are text, not a format field
    assert DatasetPrompts("x", ("{odd}",), ("a {} b",)).prompts(0) == ["a {odd} b"]


def test_imagenet_class_folders_get_imagenets_names_and_prompts():
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and list(wnids) == sorted(set(wnids)) and wnids[:2] == ("n01440764", "n01443537")
    assert match_folder(wnids) is DATASETS["imagenet"]
    subset = match_folder([wnids[21], wnids[0]], variant="clip")  # any subset, in the folder's label order
    assert subset.classnames == ("kite (bird of prey)", "tench")
    assert subset.templates == CLIP_VARIANTS["imagenet"].templates


def test_folders_match_their_dataset_by_name():
    office_home = match_folder(OFFICE_HOME_FOLDERS)
    assert office_home.name.startswith("office_") and office_home.classnames == DATASETS["office_ar"].classnames
    aid_folders = sorted(name.replace(" ", "") for name in CLIP_VARIANTS["aid"].classnames)
    assert match_folder(aid_folders) is DATASETS["aid"]
    assert match_folder(aid_folders, variant="clip") is CLIP_VARIANTS["aid"]
    reversed_cifar = match_folder(list(reversed(DATASETS["cifar10"].classnames)))
    assert reversed_cifar.classnames == tuple(reversed(DATASETS["cifar10"].classnames))
    assert reversed_cifar.templates == DATASETS["cifar10"].templates
    fer = match_folder(["Neutral", "Happy", "angry", "disgusted", "fearful", "sad", "surprised"])
    assert fer.synonyms[:2] == (("neutral", "bored"), ("happy", "smiling"))


def test_unmatched_folders_keep_their_names():
    assert match_folder(["cat", "dog"]) is None
    assert match_folder(list(DATASETS["cifar10"].classnames)[:-1]) is None  # a subset of names is not the dataset
    assert prompts_for_folder(["cat", "sea_lion"]).classnames == ("cat", "sea lion")
    with pytest.raises(ValueError, match="not the class names of 'cifar10'"):
        match_folder(["cat", "dog"], dataset="cifar10")
    assert match_folder(OFFICE_HOME_FOLDERS, dataset="office_pr").name == "office_pr"
