"""TCVOM's trimap generation module (Zhang et al., "Attention-guided Temporally Coherent Video Object Matting",
ACM MM 2021): a space-time memory network (STM, Oh et al. 2019) that carries keyframe trimaps to every frame.
Written for this project from the published architecture.

Memory frames are encoded with their trimap (``memorize``): a ResNet-50 trunk up to layer3 (1/16, 1024 channels)
whose stem also takes the object's mask and the other object's, then a 3x3 key (128) and value (512) projection.
A query frame (``segment``) goes through its own trunk and projections; every query position reads the memory by
dot-product attention (softmax over all memory positions, scaled by sqrt(128)), and a decoder with skip connections
at 1/8 and 1/4 turns [read value, query value] into two-class logits per object, upsampled to the frame.

The three trimap classes are two STM "objects": unknown and foreground (background is what neither claims). Each
object is decoded on its own; their foreground probabilities are soft-aggregated into three-class logits
(background = product of (1 - p)), as STM does for several objects. So a trimap is probabilities
[B,3,H,W] ordered (background, unknown, foreground), and the network's output is logits in that order.

Frames are RGB in 0..1. As in the official code they are ImageNet-normalised twice: once by the caller of the
network (the official data pipeline) and once inside each encoder (its ``mean``/``std`` buffers); ``memorize`` and
``segment`` do both. The official inference script feeds OpenCV's BGR frames where training fed RGB; we feed RGB.
Sizes are padded with zeros to multiples of 16, split evenly, and cropped back (the official ``pad_divide_by``).

Module and parameter names and shapes follow the official ``STM`` class (yunkezhang/TCVOM-TGM ``model.py``, itself
seoungwugoh/STM's) so its checkpoints load with ``strict=True``: ``Encoder_M``, ``Encoder_Q``, ``KV_M_r4``,
``KV_Q_r4``, ``Decoder``. The trunks are torchvision's ResNet-50 names under ``res2``/``res3``/``res4``, built from
the project's own ResNet (``backbones/resnet.py``), no torchvision.

``TrimapRun`` is the official inference loop for one direction from one keyframe (``test_mf_2.py``): the memory
holds the given keyframes for good, the previous frame with its prediction for one step, and every ``mem_every``-th
frame for longer, at most ``max_memory`` of those at a read (the oldest goes first; keyframes are never forgotten).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones.resnet import ResNet50Encoder
from .ftpvm import ResBlock, pad_to_multiple

KEY_CHANNELS, VALUE_CHANNELS, DECODER_CHANNELS = 128, 512, 256
OBJECTS = 2  # unknown and foreground; background is implied
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalised(x: Tensor) -> Tensor:
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class _Trunk(nn.Module):
    """ResNet-50 up to layer3 under the official names (``conv1``, ``bn1``, ``res2``..``res4``) with the encoder's
    own normalisation buffers (``mean``, ``std``)."""

    def __init__(self):
        super().__init__()
        resnet = ResNet50Encoder()  # our torchvision-named ResNet-50; layer4 is not part of the STM
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.res2, self.res3, self.res4 = resnet.layer1, resnet.layer2, resnet.layer3
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def stages(self, stem: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The stem convolution's output -> r4 (1/16, 1024), r3 (1/8, 512), r2 (1/4, 256)."""
        x = self.maxpool(self.relu(self.bn1(stem)))
        r2 = self.res2(x)
        r3 = self.res3(r2)
        return self.res4(r3), r3, r2


class MemoryEncoder(_Trunk):
    """Official ``Encoder_M``: frame, object mask and other object's mask -> r4, r3, r2."""

    def __init__(self):
        super().__init__()
        self.conv1_m = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.conv1_o = nn.Conv2d(1, 64, 7, 2, 3, bias=False)

    def forward(self, frame: Tensor, mask: Tensor, other: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        f = (frame - self.mean) / self.std
        return self.stages(self.conv1(f) + self.conv1_m(mask) + self.conv1_o(other))


class QueryEncoder(_Trunk):
    """Official ``Encoder_Q``: frame -> r4, r3, r2."""

    def forward(self, frame: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.stages(self.conv1((frame - self.mean) / self.std))


class KeyValue(nn.Module):
    def __init__(self, cin: int, keys: int = KEY_CHANNELS, values: int = VALUE_CHANNELS):
        super().__init__()
        self.Key = nn.Conv2d(cin, keys, 3, padding=1)
        self.Value = nn.Conv2d(cin, values, 3, padding=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.Key(x), self.Value(x)


class Refine(nn.Module):
    """Skip features (3x3 conv, residual block) plus the coarser map upsampled x2, then a residual block."""

    def __init__(self, skip_channels: int, channels: int):
        super().__init__()
        self.convFS = nn.Conv2d(skip_channels, channels, 3, padding=1)
        self.ResFS = ResBlock(channels, channels)
        self.ResMM = ResBlock(channels, channels)

    def forward(self, skip: Tensor, coarse: Tensor) -> Tensor:
        up = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)
        return self.ResMM(self.ResFS(self.convFS(skip)) + up)


class Decoder(nn.Module):
    """[read value, query value] at 1/16 (1024) with r3, r2 -> two-class logits at full size."""

    def __init__(self, channels: int = DECODER_CHANNELS):
        super().__init__()
        self.convFM = nn.Conv2d(2 * VALUE_CHANNELS, channels, 3, padding=1)
        self.ResMM = ResBlock(channels, channels)
        self.RF3 = Refine(512, channels)
        self.RF2 = Refine(256, channels)
        self.pred2 = nn.Conv2d(channels, 2, 3, padding=1)

    def forward(self, m4: Tensor, r3: Tensor, r2: Tensor) -> Tensor:
        m2 = self.RF2(r2, self.RF3(r3, self.ResMM(self.convFM(m4))))
        return F.interpolate(self.pred2(F.relu(m2)), scale_factor=4, mode="bilinear", align_corners=False)


def read_memory(memory_keys: Tensor, memory_values: Tensor, query_key: Tensor) -> Tensor:
    """Keys [N,Ck,T,h,w], values [N,Cv,T,h,w], query key [N,Ck,h,w] -> read values [N,Cv,h,w]: each query position's
    softmax over every memory position of the dot product scaled by sqrt(Ck)."""
    n, ck, t, h, w = memory_keys.shape
    affinity = torch.einsum("nkm,nkq->nmq", memory_keys.reshape(n, ck, t * h * w), query_key.reshape(n, ck, h * w))
    weights = F.softmax(affinity / math.sqrt(ck), dim=1)
    read = torch.einsum("nvm,nmq->nvq", memory_values.reshape(n, memory_values.shape[1], t * h * w), weights)
    return read.reshape(n, -1, h, w)


def soft_aggregation(object_probs: Tensor) -> Tensor:
    """Per-object foreground probabilities [B,O,H,W] -> logits [B,1+O,H,W] (background first), as STM merges
    objects: background is the product of (1 - p), each share clamped away from 0 and 1, then logit(p)."""
    background = torch.prod(1 - object_probs, dim=1, keepdim=True)
    shares = torch.cat([background, object_probs], dim=1).clamp(1e-7, 1 - 1e-7)
    return torch.log(shares / (1 - shares))


def _crop(x: Tensor, height: int, width: int) -> Tensor:
    """Undo ``pad_to_multiple``: the centre ``height`` x ``width``."""
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top:top + height, left:left + width]


class TrimapGenerationModule(nn.Module):
    """The official ``STM`` of TCVOM-TGM. ``memorize(frame, trimap)`` -> (keys, values) of one memory frame;
    ``segment(frame, keys, values)`` -> trimap logits. Memory frames stack along dim 3 (``torch.cat(..., dim=3)``).

    frame: [B,3,H,W] RGB 0..1; trimap: [B,3,H,W] class probabilities (background, unknown, foreground), one-hot for
    a keyframe; keys [B,2,128,T,H/16,W/16], values [B,2,512,T,H/16,W/16] (one per object: unknown, foreground).
    """

    def __init__(self):
        super().__init__()
        self.Encoder_M = MemoryEncoder()
        self.Encoder_Q = QueryEncoder()
        self.KV_M_r4 = KeyValue(1024)
        self.KV_Q_r4 = KeyValue(1024)
        self.Decoder = Decoder()

    def model_args(self) -> dict:
        """Constructor arguments, stored in training checkpoints (none: the official module has one shape)."""
        return {}

    def memorize(self, frame: Tensor, trimap: Tensor) -> tuple[Tensor, Tensor]:
        b = frame.shape[0]
        frame, trimap = pad_to_multiple(imagenet_normalised(frame)), pad_to_multiple(trimap)
        unknown, foreground = trimap[:, 1:2], trimap[:, 2:3]
        # One batch entry per object: its own mask, and the other object's as "other".
        frames = frame.repeat_interleave(OBJECTS, dim=0)
        masks = torch.stack([unknown, foreground], dim=1).flatten(0, 1)
        others = torch.stack([foreground, unknown], dim=1).flatten(0, 1)
        r4, _, _ = self.Encoder_M(frames, masks, others)
        key, value = self.KV_M_r4(r4)
        return key.unflatten(0, (b, OBJECTS))[:, :, :, None], value.unflatten(0, (b, OBJECTS))[:, :, :, None]

    def segment(self, frame: Tensor, keys: Tensor, values: Tensor) -> Tensor:
        b, _, height, width = frame.shape
        r4, r3, r2 = self.Encoder_Q(pad_to_multiple(imagenet_normalised(frame)))
        key, value = self.KV_Q_r4(r4)
        per_object = lambda x: x.repeat_interleave(OBJECTS, dim=0)  # noqa: E731
        read = read_memory(keys.flatten(0, 1), values.flatten(0, 1), per_object(key))
        logits = self.Decoder(torch.cat([read, per_object(value)], dim=1), per_object(r3), per_object(r2))
        object_probs = F.softmax(logits, dim=1)[:, 1].unflatten(0, (b, OBJECTS))
        return _crop(soft_aggregation(object_probs), height, width)

    def forward(self, frame: Tensor, keys: Tensor, values: Tensor) -> Tensor:
        return self.segment(frame, keys, values)


def one_hot_trimap(classes: Tensor) -> Tensor:
    """Class map [B,H,W] (0 background, 1 unknown, 2 foreground) -> probabilities [B,3,H,W]."""
    return F.one_hot(classes.long(), 3).permute(0, 3, 1, 2).float()


# --- the inference loop of one direction from one keyframe ------------------------------------------------------
class TrimapGenerator(Protocol):
    """What ``TrimapRun`` needs of a trimap generator (the STM network, or the no-checkpoint variant)."""

    def encode(self, frame, trimap) -> object:
        """One memory entry from a frame and its trimap probabilities."""

    def read(self, frame, memory: list) -> object:
        """The frame's trimap probabilities read from the memory entries."""


class StmGenerator:
    """``TrimapGenerator`` over the network: entries are (keys, values) with T = 1; frames [1,3,H,W] tensors."""

    def __init__(self, model: TrimapGenerationModule):
        self.model = model

    def encode(self, frame: Tensor, trimap: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.memorize(frame, trimap)

    def logits(self, frame: Tensor, memory: list) -> Tensor:
        keys = torch.cat([entry[0] for entry in memory], dim=3)
        values = torch.cat([entry[1] for entry in memory], dim=3)
        return self.model.segment(frame, keys, values)

    def read(self, frame: Tensor, memory: list) -> Tensor:
        return F.softmax(self.logits(frame, memory), dim=1)


class TrimapRun:
    """One direction from one keyframe (the official ``test_mf_2.py`` loop): ``start(frame, trimap)`` at the
    keyframe, then ``step(frame)`` per frame in the pass's order -> that frame's trimap probabilities.

    fixed: memory entries kept for the whole run (the given keyframes: the starting one, and between two keyframes
    the other one too). The previous frame with its prediction is in memory for the next read only; frame ``i`` of
    the run (0 = the keyframe) stays longer when ``i % mem_every == 0``, and a read sees at most ``max_memory`` such
    non-keyframe entries (None: unbounded), the oldest dropped first."""

    def __init__(self, generator: TrimapGenerator, fixed: list, mem_every: int = 5, max_memory: int | None = None):
        if mem_every < 1 or (max_memory is not None and max_memory < 1):
            raise ValueError("mem_every and max_memory must be at least 1")
        if not fixed:
            raise ValueError("a trimap run needs its keyframe in memory")
        self.generator, self.fixed = generator, list(fixed)
        self.mem_every, self.max_memory = mem_every, max_memory
        self.kept: list = []  # non-keyframe entries kept beyond one step, oldest first

    def start(self, frame, trimap):
        self.position, self._last = 0, (frame, trimap)
        return trimap

    def memory(self, previous=None) -> list:
        """What the next read sees: the keyframes, the kept frames, and the previous frame's entry (if any)."""
        return self.fixed + self.kept + ([previous] if previous is not None else [])

    def step(self, frame):
        self.position += 1
        previous = None if self.position == 1 else self.generator.encode(*self._last)  # the keyframe is in fixed
        trimap = self.generator.read(frame, self.memory(previous))
        if previous is not None and (self.position - 1) % self.mem_every == 0:
            self.kept.append(previous)
            if self.max_memory is not None and len(self.kept) >= self.max_memory:
                del self.kept[0]  # the next read adds the previous frame: at most max_memory in all
        self._last = (frame, trimap)
        return trimap


def clip_trimaps(generator: TrimapGenerator, frames: list, first_trimap, mem_every: int = 1,
                 max_memory: int | None = None) -> list:
    """Propagate ``first_trimap`` through ``frames`` (the first is its frame): the predictions of frames 1.. ."""
    run = TrimapRun(generator, [generator.encode(frames[0], first_trimap)], mem_every, max_memory)
    run.start(frames[0], first_trimap)
    return [run.step(frame) for frame in frames[1:]]


def clip_loss(model: TrimapGenerationModule, frames: Tensor, classes: Tensor, valid: Tensor | None = None,
              unknown_weight: float = 1.0) -> Tensor:
    """Training loss on a clip, as the official ``FullModel``: frames [B,T,3,H,W], classes [B,T,H,W] (0/1/2); the
    first frame's true trimap is the memory, every later frame is segmented with the previous frames and their
    (soft) predictions in memory, and the loss is the class-weighted cross-entropy of frames 1.. (``valid`` [B,T,H,W]
    False: ignored, e.g. padding an augmentation brought in)."""
    weight = frames.new_tensor([1.0, unknown_weight, 1.0])
    generator = _LogitsKeeper(model)
    losses = []
    for b in range(frames.shape[0]):  # STM's loop is for one clip at a time
        clip = [frame[None] for frame in frames[b]]
        clip_trimaps(generator, clip, one_hot_trimap(classes[b, :1]), mem_every=1)
        for t, logits in enumerate(generator.kept, start=1):
            target = classes[b, t:t + 1].long()
            if valid is not None:
                target = torch.where(valid[b, t:t + 1], target, torch.full_like(target, -100))
            losses.append(F.cross_entropy(logits, target, weight=weight, ignore_index=-100))
        generator.kept = []
    return torch.stack(losses).mean()


class _LogitsKeeper(StmGenerator):
    """The network as a generator that also keeps each read's logits (for the loss)."""

    def __init__(self, model: TrimapGenerationModule):
        super().__init__(model)
        self.kept: list[Tensor] = []

    def read(self, frame: Tensor, memory: list) -> Tensor:
        self.kept.append(self.logits(frame, memory))
        return F.softmax(self.kept[-1], dim=1)
