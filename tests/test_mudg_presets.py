"""The released MUDG runs' per-dataset settings (clipadapt.mudg.presets)."""
import pytest

from clipadapt.mudg.presets import DEFAULT, PRESETS, get_preset, preset_key, resolve


def test_released_settings():
    assert (PRESETS["imagenet"].n_descriptors, PRESETS["imagenet"].k_sel, PRESETS["imagenet"].iterations) == \
        (16, 96, 300)
    assert (PRESETS["office_home"].n_descriptors, PRESETS["office_home"].k_sel) == (64, 384)
    assert PRESETS["standford_cars"].iterations == PRESETS["fgvc"].iterations == 1000
    assert len(PRESETS) == 20 and (DEFAULT.n_descriptors, DEFAULT.k_sel, DEFAULT.iterations) == (16, 96, 200)


def test_names_and_aliases():
    assert preset_key("Stanford-Cars") == "standford_cars"
    assert preset_key("office_rw") == "office_home" and get_preset("office_cl") is PRESETS["office_home"]
    assert preset_key("cifar10") is None
    with pytest.raises(ValueError, match="no released settings for 'cifar10'"):
        get_preset("cifar10")


def test_explicit_values_win_over_the_preset_and_the_default():
    assert resolve("office_home", n_descriptors=None, k_sel=5) == {"n_descriptors": 64, "k_sel": 5}
    assert resolve(None, iterations=None) == {"iterations": 200}
    assert resolve("imagenet", iterations=None) == {"iterations": 300}
