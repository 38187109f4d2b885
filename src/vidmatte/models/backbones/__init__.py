"""Encoders for RVM, written here (no torchvision) with torchvision's parameter names, so the official RVM
checkpoints (whose keys follow torchvision's layout) load with ``strict=True``."""

from .mobilenetv3 import MobileNetV3LargeEncoder
from .resnet import ResNet50Encoder

__all__ = ["MobileNetV3LargeEncoder", "ResNet50Encoder"]
