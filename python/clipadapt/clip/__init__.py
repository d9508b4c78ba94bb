"""CLIP models for the adaptation methods: open_clip loading (pretrained tag or local weights
file, offline-aware), custom small architectures, and per-dataset prompts."""
from clipadapt.clip.models import ClipModel, load_clip, register_model_config
from clipadapt.clip.prompts import DATASETS, DatasetPrompts, from_folder, get_prompts

__all__ = ["DATASETS", "ClipModel", "DatasetPrompts", "from_folder", "get_prompts", "load_clip", "register_model_config"]
