"""Datasets and composition: benchmark clips with exact ground truth built from real mattes and backgrounds."""
