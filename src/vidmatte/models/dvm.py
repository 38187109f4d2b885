"""DVM (Sun et al., "Deep Video Matting via Spatio-Temporal Alignment and Aggregation", CVPR 2021) in plain PyTorch.

Two networks:

- ``DeepVideoMatting``, the matting network, with the official module tree and parameter names (read from
  nowsyn/DVM ``models/networks.py``: ``RN50``, ``FusionNet``, ``Decoder``) so the official ``*_net_Base.pth`` state
  dict loads with ``strict=True``: a ResNet-50 encoder over RGB + trimap (4 channels, features at 1/2 .. 1/32),
  ST-FAM (``fusion``: at the four finer scales each neighbouring frame's features are aligned to the target frame's
  by a modulated deformable convolution whose offsets come from both frames; the aligned frames are weighted by
  channel then spatial attention and fused by a 1x1 convolution), a pixel-shuffle decoder with GCN skips, and the
  refinement stage. Frames go in normalised with ImageNet statistics, trimaps in 0 / 0.5 / 1; the target frame
  ``t`` reads frames ``t - shift .. t`` (the official ``--shift 2``).
- ``TrimapPropagationNetwork``, the paper's lightweight interactive trimap propagation: the official repository
  publishes no code or weights for it, so its design and names are ours: the reference (key)frames are encoded
  with their trimaps into keys and values, every query frame reads them by attention and a small decoder returns
  3-class logits (background, unknown, foreground); more keyframes (the user's corrections) are more references.

The deformable convolution is the modulated one of the official CUDA extension (``dcn/``, DCNv2), written with
``grid_sample`` over the offset-shifted sampling positions: no compiled code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones.mobilenetv3 import IMAGENET_MEAN, IMAGENET_STD, MobileNetV3LargeEncoder
from .backbones.resnet import ResNet50Encoder

SHIFT = 2  # neighbouring frames before the target (the official README's --shift 2 for training and testing)
CHANNELS = (64, 256, 512, 1024, 2048)  # encoder features at 1/2, 1/4, 1/8, 1/16, 1/32
DEFORMABLE_GROUPS = 8
MULTIPLE = 32  # frame sides the matting network accepts (its deepest features are at 1/32)
# The official GCN's second branch pads a 1x7 kernel's height instead of its width, so at 1/32 the features must be
# at least 7 wide: frames at least 224 pixels wide (height has no such floor).
MIN_WIDTH = 7 * MULTIPLE


# --- the deformable convolution --------------------------------------------------------------------------------------
def modulated_deform_conv2d(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor, bias: Tensor | None = None,
                            stride: int = 1, padding: int = 0, dilation: int = 1, deformable_groups: int = 1) -> Tensor:
    """DCNv2: x [N,C,H,W]; offset [N, G*2*K, Ho, Wo] ((dy, dx) per kernel tap k = i*kw + j, G groups of channels);
    mask [N, G*K, Ho, Wo]; weight [O, C, kh, kw]. Each tap reads x bilinearly at its shifted position (zero
    outside the image), scaled by its mask, then the taps are weighed as an ordinary convolution."""
    n, c, h, w = x.shape
    out_ch, _, kh, kw = weight.shape
    taps, groups = kh * kw, deformable_groups
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    offset = offset.view(-1, groups, taps, 2, ho, wo)  # -1 for the batch: it stays dynamic in ONNX
    # Sampling positions in pixels: the tap's place in the kernel window plus the learned offset.
    base_y = (torch.arange(ho, device=x.device, dtype=x.dtype) * stride - padding).view(1, ho, 1)
    base_x = (torch.arange(wo, device=x.device, dtype=x.dtype) * stride - padding).view(1, 1, wo)
    tap_y = (torch.arange(kh, device=x.device, dtype=x.dtype) * dilation).repeat_interleave(kw).view(taps, 1, 1)
    tap_x = (torch.arange(kw, device=x.device, dtype=x.dtype) * dilation).repeat(kh).view(taps, 1, 1)
    y = base_y + tap_y + offset[:, :, :, 0]  # [N,G,K,Ho,Wo]
    xx = base_x + tap_x + offset[:, :, :, 1]
    # grid_sample's pixel-centre convention (align_corners=False): pixel p sits at (2p + 1) / size - 1.
    grid = torch.stack([(2 * xx + 1) / w - 1, (2 * y + 1) / h - 1], dim=-1)  # [N,G,K,Ho,Wo,2]
    grid = grid.reshape(-1, taps * ho, wo, 2)
    sampled = F.grid_sample(x.reshape(-1, c // groups, h, w), grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)  # [N*G, C/G, K*Ho, Wo]
    sampled = sampled.view(-1, groups, c // groups, taps, ho, wo) * mask.view(-1, groups, 1, taps, ho, wo)
    columns = sampled.reshape(-1, c * taps, ho * wo)
    out = torch.matmul(weight.reshape(out_ch, c * taps), columns).view(-1, out_ch, ho, wo)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class ModulatedDeformConvPack(nn.Module):
    """The official ``ModulatedDeformConvPack`` with ``extra_offset_mask=True``: ``weight``, ``bias`` and
    ``conv_offset_mask`` (offsets and masks from a second input; its output splits in thirds: dy/dx halves of the
    offsets, then the mask logits)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 dilation: int = 1, deformable_groups: int = 1):
        super().__init__()
        self.stride, self.padding, self.dilation, self.deformable_groups = stride, padding, dilation, deformable_groups
        self.weight = nn.Parameter(torch.empty(cout, cin, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.conv_offset_mask = nn.Conv2d(cin, deformable_groups * 3 * kernel_size ** 2, kernel_size, stride, padding)
        bound = 1 / math.sqrt(cin * kernel_size ** 2)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.conv_offset_mask.weight)  # starts as an ordinary convolution (offsets 0, masks 0.5)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: Tensor, offset_features: Tensor) -> Tensor:
        o1, o2, mask = torch.chunk(self.conv_offset_mask(offset_features), 3, dim=1)
        return modulated_deform_conv2d(x, torch.cat([o1, o2], dim=1), torch.sigmoid(mask), self.weight, self.bias,
                                       self.stride, self.padding, self.dilation, self.deformable_groups)


# --- the official building blocks ------------------------------------------------------------------------------------
class ConvLayer(nn.Sequential):
    """conv (no bias) -> BatchNorm -> ReLU as children ``conv``, ``norm``, ``relu`` (the official ``_ConvLayer``)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 1, padding: int = 0):
        super().__init__()
        self.add_module("conv", nn.Conv2d(cin, cout, kernel_size, 1, padding, bias=False))
        self.add_module("norm", nn.BatchNorm2d(cout))
        self.add_module("relu", nn.ReLU(inplace=True))


class GCN(nn.Module):
    """Global convolution: a k x 1 then 1 x k branch plus a 1 x k then k x 1 branch. The second branch pads as the
    official one does (height first, then width), which returns the input's size all the same."""

    def __init__(self, cin: int, cout: int, k: int = 7):
        super().__init__()
        p = (k - 1) // 2
        self.conv_l1 = nn.Conv2d(cin, cout, (k, 1), padding=(p, 0))
        self.conv_l2 = nn.Conv2d(cout, cout, (1, k), padding=(0, p))
        self.conv_r1 = nn.Conv2d(cin, cout, (1, k), padding=(p, 0))
        self.conv_r2 = nn.Conv2d(cout, cout, (k, 1), padding=(0, p))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_l2(self.conv_l1(x)) + self.conv_r2(self.conv_r1(x))


class FlowLayer(nn.Module):
    """Aligns a neighbour's features to the target's: offsets from both (two 3x3 convolutions with leaky ReLU),
    then the deformable convolution over the neighbour (the official ``BasicFlowLayer``)."""

    def __init__(self, nf: int, groups: int = DEFORMABLE_GROUPS):
        super().__init__()
        self.off_conv1 = nn.Conv2d(nf * 2, nf, 3, 1, 1)
        self.off_conv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.dcnpack = ModulatedDeformConvPack(nf, nf, 3, 1, 1, 1, groups)

    def forward(self, neighbour: Tensor, target: Tensor) -> Tensor:
        off = F.leaky_relu(self.off_conv1(torch.cat([neighbour, target], dim=1)), 0.1)
        off = F.leaky_relu(self.off_conv2(off), 0.1)
        return self.dcnpack(neighbour, off)


class ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class SpatialAttention(nn.Module):
    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CSAttention(nn.Module):
    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.ca = ChannelAttention(channels, reduction)
        self.sa = SpatialAttention(7)

    def forward(self, x: Tensor) -> Tensor:
        return self.sa(self.ca(x))


class FusionNet(nn.Module):
    """ST-FAM. Features [B, shift + step, C, h, w] per scale -> the ``step`` last frames' fused features
    [B*step, C, h, w]: target j reads frames j .. j + shift (itself last); the 1/32 scale is not aligned."""

    def __init__(self, channels=CHANNELS, shift: int = SHIFT, groups: int = DEFORMABLE_GROUPS):
        super().__init__()
        self.shift, self.iters = shift, shift + 1
        for level, nf in enumerate(channels):
            if level < 4:
                self.add_module(f"flow{level}", FlowLayer(nf, groups))
        for level, nf in enumerate(channels):
            self.add_module(f"attn{level}", CSAttention(nf * self.iters, self.iters))
        for level, nf in enumerate(channels):
            self.add_module(f"fuse{level}", ConvLayer(nf * self.iters, nf, 1))

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        step = features[0].shape[1] - self.shift
        fused = []
        for level, fea in enumerate(features):
            target = fea[:, -step:].flatten(0, 1)
            frames = []
            for i in range(self.iters):
                neighbour = fea[:, i:i + step].flatten(0, 1)
                frames.append(getattr(self, f"flow{level}")(neighbour, target) if level < 4 else neighbour)
            x = getattr(self, f"attn{level}")(torch.cat(frames, dim=1))
            fused.append(getattr(self, f"fuse{level}")(x))
        return fused


class PsDeconvLayer(nn.Module):
    """x2 up by pixel shuffle (``rs`` makes 4x the channels), then a 3x3 convolution over it and the skip."""

    def __init__(self, cin: int, cout: int, skip: int):
        super().__init__()
        self.rs = ConvLayer(cin, cout * 4, 1)
        self.up = nn.PixelShuffle(2)
        self.deconv = ConvLayer(cout + skip, cout, 3, padding=1)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.deconv(torch.cat([self.up(self.rs(x)), skip], dim=1))


class Decoder(nn.Module):
    def __init__(self, channels=CHANNELS, in_channels: int = 4):
        super().__init__()
        nf0, nf1, nf2, nf3, nf4 = channels
        for level, nf in enumerate(channels):
            self.add_module(f"skip{level}", GCN(nf, nf))
        self.deconv0 = PsDeconvLayer(nf0, nf0, in_channels)
        self.deconv1 = PsDeconvLayer(nf1, nf0, nf0)
        self.deconv2 = PsDeconvLayer(nf2, nf1, nf1)
        self.deconv3 = PsDeconvLayer(nf3, nf2, nf2)
        self.deconv4 = PsDeconvLayer(nf4, nf3, nf3)

    def forward(self, x: Tensor, fused: list[Tensor]) -> Tensor:
        l0, l1, l2, l3, l4 = (getattr(self, f"skip{i}")(f) for i, f in enumerate(fused))
        d = self.deconv4(l4, l3)
        d = self.deconv3(d, l2)
        d = self.deconv2(d, l1)
        d = self.deconv1(d, l0)
        return self.deconv0(d, x)


class RefineLayer(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = ConvLayer(cin, cout, 3, padding=1)
        self.conv2 = ConvLayer(cout, cout, 3, padding=1)
        self.conv3 = ConvLayer(cout, cout, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(self.conv2(self.conv1(x)))


class DvmEncoder(ResNet50Encoder):
    """The official ``resnet50(4, add_layer4=True, add_layer0=True)``: torchvision's names, RGB + trimap in, no
    dilation, features after the stem and after each of the four layers."""

    def __init__(self, in_channels: int = 4, width_divisor: int = 1):
        super().__init__(in_channels=in_channels, dilate_layer4=False, width_divisor=width_divisor)

    def forward(self, x: Tensor) -> list[Tensor]:
        f0 = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f0, f1, f2, f3, self.layer4(f3)]


# --- the matting network ---------------------------------------------------------------------------------------------
class DeepVideoMatting(nn.Module):
    """The official ``RN50``. ``forward(x)``: x [N,4,H,W] (the official call: the batch axis is time, frames
    normalised with ImageNet statistics, trimap 0/0.5/1 as the 4th channel) or [B,N,4,H,W]; sides multiples of 32.
    Returns (coarse, refined) alpha for the last N - shift frames, [N - shift, 1, H, W] (or [B*(N - shift), ...]);
    refined is 0.0 without the refinement stage, as in the official code.

    ``width_divisor`` > 1 divides every width (the official network has 319 M parameters, most of them in the 1/32
    scale's GCN, fusion and attention): for tests and CPU smoke runs only; official checkpoints need 1."""

    def __init__(self, shift: int = SHIFT, add_refine_stage: bool = True, width_divisor: int = 1):
        super().__init__()
        self.shift, self.add_refine_stage, self.width_divisor = shift, add_refine_stage, width_divisor
        channels = tuple(c // width_divisor for c in CHANNELS)
        self.encoder = DvmEncoder(4, width_divisor)
        self.fusion = FusionNet(channels, shift)
        self.decoder = Decoder(channels, 4)
        self.pred_head = nn.Conv2d(channels[0], 1, 3, 1, 1)
        if add_refine_stage:
            self.refine = RefineLayer(4, channels[0])
            self.refine_head = nn.Conv2d(channels[0], 1, 3, 1, 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def model_args(self) -> dict:
        return {"shift": self.shift, "add_refine_stage": self.add_refine_stage, "width_divisor": self.width_divisor}

    def forward(self, x: Tensor):
        clip = x if x.ndim == 5 else x[None]
        check_size(*clip.shape[-2:])
        return self.decode(clip[:, -(clip.shape[1] - self.shift):], self.fuse(self.encode(clip)))

    def encode(self, clip: Tensor) -> list[Tensor]:
        """[B,N,4,H,W] -> the encoder's five features per frame, each [B,N,C,h,w] (kept by the matter so each
        frame is encoded once)."""
        return [f.unflatten(0, (-1, clip.shape[1])) for f in self.encoder(clip.flatten(0, 1))]

    def fuse(self, features: list[Tensor]) -> list[Tensor]:
        return self.fusion(features)

    def decode(self, targets: Tensor, fused: list[Tensor]):
        """targets [B,step,4,H,W] (the frames the fused features belong to) -> (coarse, refined) [B*step,1,H,W]."""
        x = targets.flatten(0, 1)
        raw = self.pred_head(self.decoder(x, fused))
        coarse = torch.sigmoid(raw)
        if not self.add_refine_stage:
            return coarse, 0.0
        raw_refined = self.refine_head(self.refine(torch.cat([x[:, :3], coarse], dim=1)))
        return coarse, torch.sigmoid(raw + raw_refined)

    def network_input(self, frames: Tensor, trimaps: Tensor) -> Tensor:
        """RGB 0..1 [...,3,H,W] and trimaps 0/0.5/1 [...,1,H,W] -> the network's 4-channel input."""
        rgb = (frames.reshape(-1, *frames.shape[-3:]) - self.mean) / self.std
        return torch.cat([rgb.view_as(frames), trimaps], dim=-3)

    def matte_clip(self, frames: Tensor, trimaps: Tensor) -> tuple[Tensor, Tensor]:
        """frames [B,T,3,H,W] 0..1 and trimaps [B,T,1,H,W] -> (coarse, refined) [B,T,1,H,W] for every frame; the
        first frame stands in for the neighbours before it."""
        x = self.network_input(frames, trimaps)
        x = torch.cat([x[:, :1].expand(-1, self.shift, -1, -1, -1), x], dim=1)
        coarse, refined = self(x)
        unflat = (frames.shape[0], frames.shape[1])
        return coarse.unflatten(0, unflat), (refined.unflatten(0, unflat) if self.add_refine_stage else refined)


# --- the trimap propagation network (ours: no official code) --------------------------------------------------------
class TrimapPropagationNetwork(nn.Module):
    """Keyframes with trimaps -> 3-class logits for query frames, by attention at 1/16 scale.

    The encoder is RVM's MobileNetV3-Large (so it can start from RVM's weights: ``init_encoder_from_rvm``); keys
    are a projection of its 1/16 features (shared by references and queries); a reference's values are its features
    with the trimap's class fractions per 16x16 cell; the read-out and the query's own features are decoded with the
    encoder's 1/8, 1/4 and 1/2 features to logits at full size. Sides in multiples of 16."""

    def __init__(self, ch_key: int = 64, ch_value: int = 128):
        super().__init__()
        f1, f2, f3, f4 = MobileNetV3LargeEncoder.feature_channels
        self.ch_key, self.ch_value = ch_key, ch_value
        self.encoder = MobileNetV3LargeEncoder()
        self.key_proj = nn.Conv2d(f4, ch_key, 3, padding=1)
        self.value_encoder = nn.Sequential(ConvLayer(f4 + 3, ch_value, 3, 1), ConvLayer(ch_value, ch_value, 3, 1))
        self.query_proj = ConvLayer(f4, ch_value, 1)
        self.fuse16 = ConvLayer(2 * ch_value, 128, 3, 1)
        self.up8 = ConvLayer(128 + f3, 64, 3, 1)
        self.up4 = ConvLayer(64 + f2, 32, 3, 1)
        self.up2 = ConvLayer(32 + f1, 16, 3, 1)
        self.head = nn.Conv2d(16, 3, 3, padding=1)

    def model_args(self) -> dict:
        return {"ch_key": self.ch_key, "ch_value": self.ch_value}

    def init_encoder_from_rvm(self, rvm_state: dict[str, Tensor]) -> None:
        """RVM's ``backbone.*`` (a ``MattingNetwork`` state dict) has this encoder's names: every layer is set."""
        prefix = "backbone."
        self.encoder.load_state_dict({k[len(prefix):]: v for k, v in rvm_state.items() if k.startswith(prefix)},
                                     strict=True)

    def encode_references(self, frames: Tensor, trimaps: Tensor) -> tuple[Tensor, Tensor]:
        """frames [B,M,3,H,W] 0..1, trimaps [B,M,1,H,W] 0/0.5/1 -> keys [B,Ck,M*h*w], values [B,Cv,M*h*w]."""
        m = frames.shape[1]
        f16 = self.encoder(frames.flatten(0, 1))[-1]
        fractions = F.avg_pool2d(trimap_classes(trimaps.flatten(0, 1)), 16)  # sides in multiples of 16: exact
        keys = self.key_proj(f16)
        values = self.value_encoder(torch.cat([f16, fractions], dim=1))
        return _memory_layout(keys, m), _memory_layout(values, m)

    def forward(self, query: Tensor, ref_frames: Tensor, ref_trimaps: Tensor) -> Tensor:
        """query [B,T,3,H,W], references [B,M,3,H,W] with trimaps [B,M,1,H,W] -> logits [B,T,3,H,W]."""
        return self.propagate(query, *self.encode_references(ref_frames, ref_trimaps))

    def propagate(self, query: Tensor, keys: Tensor, values: Tensor) -> Tensor:
        t = query.shape[1]
        f1, f2, f3, f16 = self.encoder(query.flatten(0, 1))
        read = read_memory(self.key_proj(f16), keys.repeat_interleave(t, 0), values.repeat_interleave(t, 0))
        x = self.fuse16(torch.cat([read, self.query_proj(f16)], dim=1))
        for layer, skip in ((self.up8, f3), (self.up4, f2), (self.up2, f1)):
            x = layer(torch.cat([F.interpolate(x, skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        logits = F.interpolate(self.head(x), query.shape[-2:], mode="bilinear", align_corners=False)
        return logits.unflatten(0, (-1, t))


def trimap_classes(trimaps: Tensor) -> Tensor:
    """[N,1,H,W] with 0 / 0.5 / 1 -> one-hot [N,3,H,W] (background, unknown, foreground)."""
    return torch.cat([trimaps < 0.25, (trimaps >= 0.25) & (trimaps <= 0.75), trimaps > 0.75], dim=1).float()


def _memory_layout(x: Tensor, m: int) -> Tensor:
    """[B*M,C,h,w] -> [B,C,M*h*w]: every reference position is one memory slot, reference by reference (so the
    memories of single references concatenated on the last axis are the memory of them all)."""
    return x.unflatten(0, (-1, m)).permute(0, 2, 1, 3, 4).flatten(2)


def read_memory(query_keys: Tensor, keys: Tensor, values: Tensor) -> Tensor:
    """Scaled dot-product attention of each query position [N,Ck,h,w] over all memory slots -> [N,Cv,h,w]."""
    n, ck, h, w = query_keys.shape
    affinity = torch.einsum("nkm,nkq->nmq", keys, query_keys.flatten(2)) / math.sqrt(ck)
    return torch.bmm(values, affinity.softmax(dim=1)).view(-1, values.shape[1], h, w)


# --- both, as one trainable module -----------------------------------------------------------------------------------
class DeepVideoMattingSystem(nn.Module):
    """The two networks DVM runs, as training checkpoints of ours hold them: ``matting.*`` (official names below the
    prefix) and ``trimap.*``."""

    def __init__(self, matting: dict | None = None, trimap: dict | None = None):
        super().__init__()
        self.matting = DeepVideoMatting(**(matting or {}))
        self.trimap = TrimapPropagationNetwork(**(trimap or {}))

    def model_args(self) -> dict:
        return {"matting": self.matting.model_args(), "trimap": self.trimap.model_args()}


def check_size(height: int, width: int) -> None:
    if height % MULTIPLE or width % MULTIPLE or width < MIN_WIDTH:
        raise ValueError(f"DVM's matting network takes sides in multiples of {MULTIPLE} and a width of at least "
                         f"{MIN_WIDTH}, got {width}x{height}")

