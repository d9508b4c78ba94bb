"""MUDG (arXiv 2402.04416): adaptive text augmentation, retrieval, sample selection and fine-tuning."""
