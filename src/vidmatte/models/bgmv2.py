"""BackgroundMattingV2 (Lin et al., CVPR 2021), and its ConvLSTM variant ("Video Matting with Convolutional LSTM"),
written for this project from the published architecture.

The network sees the source and the clean plate together (6 channels). ``MattingBase`` is an encoder (MobileNetV2 or
ResNet-50/101, output stride 16), DeepLabV3's ASPP (rates 3, 6, 9) and a 4-step decoder that ends at the input
resolution with 37 channels: alpha, the foreground as a residual on the source, an error map and 32 hidden
channels. ``MattingRefine`` runs that base on the frames scaled by ``backbone_scale`` (1/4 by default), then a small
refiner re-predicts alpha and foreground at full resolution on the 4x4 patches its error map selects: ``sampling``
(the ``sample_pixels`` / 16 patches of highest error; with ``prevent_oversampling`` only where the error is > 0),
``thresholding`` (where the error is > ``threshold``) or ``full`` (everywhere, plain convolutions); ``kernel_size``
1 or 3.

The ConvLSTM variant (``convlstm=True``) adds one ConvLSTM after each of the decoder's first three steps (at 1/8,
1/4 and 1/2 of the base's input, hidden channels equal to the step's: 128, 64, 48), as the seed's
``decoderConvLSTM.py`` places them, so the decoder remembers the scene across frames. Its state is six tensors
``[h1, c1, h2, c2, h3, c3]`` (None: zeros; a [1,1,1,1] zero broadcasts, the ONNX convention), returned as the last
output so the caller carries it from frame to frame (the seed restarts it on every clip of its training batches).

Module and parameter names follow the official code (PeterL1n/BackgroundMattingV2 ``model/{model,decoder,refiner,
mobilenet,resnet}.py``; torchvision's ``mobilenet_v2``, ``resnet50/101`` and DeepLabV3 ``ASPP`` for the layers they
inherit; the ConvLSTMs as the seed names them, ``decoder.convLSTM{k}.cell_list.0.conv``), so an official checkpoint
loads with ``strict=True`` and the ConvLSTM variant loads it with only its new modules left fresh
(``load_bgmv2_state``). Tensors are RGB 0..1, [B,C,H,W] or [B,T,C,H,W]; outputs keep the input's form.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones.mobilenetv2 import MobileNetV2Encoder
from .backbones.resnet import RESNET50_BLOCKS, RESNET101_BLOCKS, ResNet50Encoder
from .rvm import flatten_time, unflatten_time

BACKBONES = ("mobilenetv2", "resnet50", "resnet101")
REFINE_MODES = ("full", "sampling", "thresholding")
HIDDEN_CHANNELS = 32
OUT_CHANNELS = 1 + 3 + 1 + HIDDEN_CHANNELS  # alpha, foreground residual, error, hidden
DECODER_CHANNELS = (256, 128, 64, 48, OUT_CHANNELS)
ASPP_RATES = (3, 6, 9)
ASPP_CHANNELS = 256
STATE_TENSORS = 6  # (h, c) of the three ConvLSTMs

State = list  # [h1, c1, h2, c2, h3, c3] of Optional[Tensor]


def no_state() -> State:
    return [None] * STATE_TENSORS


def resize(x: Tensor, size) -> Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


# --- encoder ---------------------------------------------------------------------------------------------------

class ResNetEncoder(ResNet50Encoder):
    """The project's ResNet (torchvision names, layer4 dilated) with the source and the plate as 6 channels,
    returning the features as BGMv2's decoder takes them: (x4 1/16, x3 1/8, x2 1/4, x1 1/2, x0 the input)."""

    def __init__(self, in_channels: int, variant: str = "resnet50"):
        super().__init__(in_channels, RESNET101_BLOCKS if variant == "resnet101" else RESNET50_BLOCKS)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x1, x2, x3, x4 = super().forward(x)
        return x4, x3, x2, x1, x


def encoder(backbone: str, in_channels: int) -> tuple[nn.Module, tuple[int, ...]]:
    """The encoder and the channels of its 1/16, 1/8, 1/4 and 1/2 features."""
    if backbone == "mobilenetv2":
        return MobileNetV2Encoder(in_channels), MobileNetV2Encoder.feature_channels
    return ResNetEncoder(in_channels, backbone), (2048, 512, 256, 64)


# --- ASPP (DeepLabV3) -----------------------------------------------------------------------------------------

def _conv_bn_relu(cin: int, cout: int, kernel: int, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU()]


class ImagePooling(nn.Sequential):
    """ASPP's image-level branch: global average, 1x1 conv, spread back over the map."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), *_conv_bn_relu(cin, cout, 1))

    def forward(self, x: Tensor) -> Tensor:
        return resize(super().forward(x), x.shape[-2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch, one 3x3 branch per rate, the image branch, concatenated and
    projected to 256 channels (dropout 0.5 while training)."""

    def __init__(self, cin: int, rates: tuple[int, ...] = ASPP_RATES, cout: int = ASPP_CHANNELS):
        super().__init__()
        branches = [nn.Sequential(*_conv_bn_relu(cin, cout, 1))]
        branches += [nn.Sequential(*_conv_bn_relu(cin, cout, 3, rate)) for rate in rates]
        branches.append(ImagePooling(cin, cout))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(*_conv_bn_relu(len(branches) * cout, cout, 1), nn.Dropout(0.5))

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


# --- ConvLSTM -------------------------------------------------------------------------------------------------

class ConvLSTMCell(nn.Module):
    """One convolution over [input, h] gives the input, forget and output gates and the candidate (in that
    order); c' = f c + i g, h' = o tanh(c')."""

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.conv = nn.Conv2d(input_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                              padding=kernel_size // 2)

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i, f, o, g = self.conv(torch.cat([x, h], dim=1)).split(self.hidden_channels, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class ConvLSTM(nn.Module):
    """A one-layer ConvLSTM over a sequence x [B,T,C,H,W] from state (h, c) (None or broadcastable zeros) ->
    (the h of every step [B,T,Ch,H,W], last h, last c). The ``cell_list`` holds one cell, the seed's naming."""

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        self.cell_list = nn.ModuleList([ConvLSTMCell(input_channels, hidden_channels, kernel_size)])

    def forward(self, x: Tensor, h: Optional[Tensor] = None, c: Optional[Tensor] = None):
        cell = self.cell_list[0]
        b, _, _, height, width = x.shape
        shape = (b, cell.hidden_channels, height, width)
        h = x.new_zeros(shape) if h is None else h.expand(shape)
        c = x.new_zeros(shape) if c is None else c.expand(shape)
        outputs = []
        for xt in x.unbind(dim=1):
            h, c = cell(xt, h, c)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h, c


# --- decoder --------------------------------------------------------------------------------------------------

class Decoder(nn.Module):
    """Upsample, concatenate the encoder's feature of that scale, conv-BN-ReLU, three times (1/8, 1/4, 1/2), then
    a plain conv at the input's resolution. With ``convlstm`` a ConvLSTM follows each of the first three steps."""

    def __init__(self, channels: tuple[int, ...], feature_channels: tuple[int, ...], convlstm: bool = False):
        super().__init__()
        for k in (1, 2, 3):
            setattr(self, f"conv{k}", nn.Conv2d(feature_channels[k - 1] + channels[k - 1], channels[k], 3,
                                                padding=1, bias=False))
            setattr(self, f"bn{k}", nn.BatchNorm2d(channels[k]))
            if convlstm:
                setattr(self, f"convLSTM{k}", ConvLSTM(channels[k], channels[k]))
        self.conv4 = nn.Conv2d(feature_channels[3] + channels[3], channels[4], 3, padding=1)
        self.relu = nn.ReLU(True)
        self.convlstm = convlstm

    def forward(self, x4: Tensor, x3: Tensor, x2: Tensor, x1: Tensor, x0: Tensor, frames: int = 1,
                state: Optional[State] = None) -> tuple[Tensor, State]:
        """Features [N,...] with N = batch x ``frames`` (time-major within each batch item) -> (output, state)."""
        x, new_state = x4, []
        for k, skip in zip((1, 2, 3), (x3, x2, x1)):
            x = resize(x, skip.shape[-2:])
            x = self.relu(getattr(self, f"bn{k}")(getattr(self, f"conv{k}")(torch.cat([x, skip], dim=1))))
            if self.convlstm:
                sequence = x.reshape(-1, frames, *x.shape[1:])
                h, c = (state or no_state())[2 * k - 2: 2 * k]
                sequence, h, c = getattr(self, f"convLSTM{k}")(sequence, h, c)
                x = sequence.flatten(0, 1)
                new_state += [h, c]
        x = self.conv4(torch.cat([resize(x, x0.shape[-2:]), x0], dim=1))
        return x, new_state


# --- refiner --------------------------------------------------------------------------------------------------

class Refiner(nn.Module):
    """Re-predicts alpha and the foreground residual at full resolution on 4x4 patches chosen by the coarse error.

    Per patch: the coarse hidden, alpha and foreground with the half-resolution source and plate (a border of 3
    around the 2x2 centre for 3x3 kernels), two conv-BN-ReLU, nearest upsampling to the full-resolution patch with
    its source and plate (border 2), conv-BN-ReLU, a last conv to 4 channels (alpha + foreground residual)."""

    def __init__(self, mode: str = "sampling", sample_pixels: int = 80_000, threshold: float = 0.1,
                 kernel_size: int = 3, prevent_oversampling: bool = True):
        super().__init__()
        if mode not in REFINE_MODES or kernel_size not in (1, 3):
            raise ValueError(f"refine mode must be one of {REFINE_MODES} and kernel_size 1 or 3")
        self.mode, self.sample_pixels, self.threshold = mode, sample_pixels, threshold
        self.kernel_size, self.prevent_oversampling = kernel_size, prevent_oversampling
        channels = (HIDDEN_CHANNELS, 24, 16, 12, 4)
        self.conv1 = nn.Conv2d(channels[0] + 6 + 4, channels[1], kernel_size, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[1])
        self.conv2 = nn.Conv2d(channels[1], channels[2], kernel_size, bias=False)
        self.bn2 = nn.BatchNorm2d(channels[2])
        self.conv3 = nn.Conv2d(channels[2] + 6, channels[3], kernel_size, bias=False)
        self.bn3 = nn.BatchNorm2d(channels[3])
        self.conv4 = nn.Conv2d(channels[3], channels[4], kernel_size, bias=True)
        self.relu = nn.ReLU(True)

    @property
    def border(self) -> tuple[int, int]:
        """Context around each patch at half and at full resolution: each valid 3x3 conv eats one pixel a side."""
        return (3, 2) if self.kernel_size == 3 else (0, 0)

    def select(self, err: Tensor) -> Tensor:
        """err [B,1,h,w] (quarter resolution) -> 0/1 map of the patches to refine."""
        if self.mode == "thresholding":
            return (err > self.threshold).to(err.dtype)
        flat = err.flatten(1)
        count = min(self.sample_pixels // 16, flat.shape[1])
        chosen = torch.zeros_like(flat).scatter_(1, flat.topk(count, dim=1, sorted=False).indices, 1.0)
        if self.prevent_oversampling:  # never refine where the base is sure it is right
            chosen = chosen * (flat > 0).to(flat.dtype)
        return chosen.view_as(err)

    def _head(self, coarse: Tensor, half: Tensor, full: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(torch.cat([coarse, half], dim=1))))
        x = self.relu(self.bn2(self.conv2(x)))
        x = F.interpolate(x, size=full.shape[-2:], mode="nearest")
        x = self.relu(self.bn3(self.conv3(torch.cat([x, full], dim=1))))
        return self.conv4(x)

    def forward(self, src: Tensor, bgr: Tensor, pha: Tensor, fgr: Tensor, err: Tensor,
                hid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Full-resolution src/bgr [B,3,H,W] (H, W multiples of 4) and the coarse outputs -> (alpha, foreground
        residual, the quarter-resolution map of refined patches)."""
        height, width = src.shape[-2:]
        half_size, quarter = (height // 2, width // 2), (height // 4, width // 4)
        src_bgr = torch.cat([src, bgr], dim=1)
        coarse = resize(torch.cat([hid, pha, fgr], dim=1), half_size)
        half = resize(src_bgr, half_size)
        if self.mode == "full":
            return self._refine_everywhere(coarse, half, src_bgr, quarter)
        ref = self.select(resize(err, quarter))
        index = torch.nonzero(ref[:, 0], as_tuple=True)
        out = resize(torch.cat([pha, fgr], dim=1), (height, width))
        half_border, full_border = self.border
        patches = self._head(crop_patches(coarse, index, 2, half_border), crop_patches(half, index, 2, half_border),
                             crop_patches(src_bgr, index, 4, full_border))
        out = replace_patches(out, patches, index, 4)
        return out[:, :1], out[:, 1:], ref

    def _refine_everywhere(self, coarse: Tensor, half: Tensor, src_bgr: Tensor, quarter) -> tuple:
        half_border, full_border = self.border
        x = self._head(F.pad(coarse, (half_border,) * 4), F.pad(half, (half_border,) * 4),
                       F.pad(src_bgr, (full_border,) * 4))
        ref = src_bgr.new_ones((src_bgr.shape[0], 1, *quarter))
        return x[:, :1], x[:, 1:], ref


def crop_patches(x: Tensor, index: tuple[Tensor, Tensor, Tensor], size: int, border: int) -> Tensor:
    """The patches (batch, row, column) of a grid of ``size`` x ``size`` cells over x [B,C,H,W], each with
    ``border`` pixels of context (zeros outside the image) -> [P,C,size+2*border,size+2*border]. Inside an ONNX
    export, one gather of every patch pixel (a sliding-window view of a dynamic batch does not export)."""
    window = size + 2 * border
    if border:
        x = F.pad(x, (border,) * 4)
    batch, row, col = index
    if not torch.onnx.is_in_onnx_export():
        # Eager: a sliding-window view, whose gradient sums overlapping borders in a fixed order (a gather's
        # gradient accumulates them in whatever order the threads run: resumed training would drift by 1e-6).
        return x.unfold(2, window, size).unfold(3, window, size).permute(0, 2, 3, 1, 4, 5)[batch, row, col]
    offsets = torch.arange(window, device=x.device)
    rows = (row * size)[:, None, None] + offsets[None, :, None]  # [P,window,1]
    cols = (col * size)[:, None, None] + offsets[None, None, :]  # [P,1,window]
    return x.permute(0, 2, 3, 1)[batch[:, None, None], rows, cols].permute(0, 3, 1, 2)


def replace_patches(x: Tensor, patches: Tensor, index: tuple[Tensor, Tensor, Tensor], size: int) -> Tensor:
    """x [B,C,H,W] with the grid cells at ``index`` replaced by ``patches`` [P,C,size,size]."""
    b, c, height, width = x.shape
    cells = x.reshape(b, c, height // size, size, width // size, size).permute(0, 2, 4, 1, 3, 5).clone()
    cells[index] = patches
    return cells.permute(0, 3, 1, 4, 2, 5).reshape(b, c, height, width)


# --- the networks ---------------------------------------------------------------------------------------------

class MattingBase(nn.Module):
    """src, bgr [B,(T,)3,H,W] -> (pha, fgr, err, hid) at the input's size (+ the state with ``convlstm``)."""

    def __init__(self, backbone: str = "mobilenetv2", convlstm: bool = False):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, not {backbone!r}")
        self.backbone_name, self.convlstm = backbone, convlstm
        self.backbone, features = encoder(backbone, 6)
        self.aspp = ASPP(features[0])
        self.decoder = Decoder(DECODER_CHANNELS, (*features[1:], 6), convlstm)

    def model_args(self) -> dict:
        """Constructor arguments, stored in checkpoints so they describe themselves."""
        return {"backbone": self.backbone_name, "convlstm": self.convlstm}

    def base(self, src: Tensor, bgr: Tensor, frames: int, state: Optional[State]) -> tuple[Tensor, State]:
        """src, bgr [N,3,h,w] with N = batch x ``frames`` -> (the decoder's 37 channels, state)."""
        x4, *shortcuts = self.backbone(torch.cat([src, bgr], dim=1))
        return self.decoder(self.aspp(x4), *shortcuts, frames=frames, state=state)

    def forward(self, src: Tensor, bgr: Tensor, state: Optional[State] = None) -> tuple:
        x, state = self.base(flatten_time(src), flatten_time(bgr), frames_of(src), state)
        pha = x[:, 0:1].clamp(0.0, 1.0)
        fgr = (x[:, 1:4] + flatten_time(src)).clamp(0.0, 1.0)
        err = x[:, 4:5].clamp(0.0, 1.0)
        hid = x[:, 5:].relu()
        outputs = tuple(unflatten_time(t, src) for t in (pha, fgr, err, hid))
        return outputs + (state,) if self.convlstm else outputs


def frames_of(x: Tensor) -> int:
    return x.shape[1] if x.ndim == 5 else 1


class MattingRefine(MattingBase):
    """src, bgr [B,(T,)3,H,W] (H, W multiples of 4) -> (pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm) (+ the state
    with ``convlstm``): the base at ``backbone_scale``, then the refiner at full resolution."""

    def __init__(self, backbone: str = "mobilenetv2", backbone_scale: float = 1 / 4, refine_mode: str = "sampling",
                 refine_sample_pixels: int = 80_000, refine_threshold: float = 0.1, refine_kernel_size: int = 3,
                 refine_prevent_oversampling: bool = True, convlstm: bool = False):
        if backbone_scale > 1 / 2:
            raise ValueError("backbone_scale must be at most 1/2")
        super().__init__(backbone, convlstm)
        self.backbone_scale = backbone_scale
        self.refiner = Refiner(refine_mode, refine_sample_pixels, refine_threshold, refine_kernel_size,
                               refine_prevent_oversampling)

    def model_args(self) -> dict:
        r = self.refiner
        return {**super().model_args(), "backbone_scale": self.backbone_scale, "refine_mode": r.mode,
                "refine_sample_pixels": r.sample_pixels, "refine_threshold": r.threshold,
                "refine_kernel_size": r.kernel_size, "refine_prevent_oversampling": r.prevent_oversampling}

    def forward(self, src: Tensor, bgr: Tensor, state: Optional[State] = None) -> tuple:
        if src.shape != bgr.shape:
            raise ValueError(f"src {tuple(src.shape)} and bgr {tuple(bgr.shape)} differ")
        if src.shape[-2] % 4 or src.shape[-1] % 4:
            raise ValueError(f"height and width must be multiples of 4, got {tuple(src.shape[-2:])}")
        full_src, full_bgr = flatten_time(src), flatten_time(bgr)
        small = [F.interpolate(t, scale_factor=self.backbone_scale, mode="bilinear", align_corners=False,
                               recompute_scale_factor=True) for t in (full_src, full_bgr)]
        x, state = self.base(*small, frames_of(src), state)
        pha_sm, fgr_sm, err_sm, hid_sm = x[:, 0:1].clamp(0.0, 1.0), x[:, 1:4], x[:, 4:5].clamp(0.0, 1.0), \
            x[:, 5:].relu()
        pha, fgr, ref_sm = self.refiner(full_src, full_bgr, pha_sm, fgr_sm, err_sm, hid_sm)
        outputs = (pha.clamp(0.0, 1.0), (fgr + full_src).clamp(0.0, 1.0), pha_sm,
                   (fgr_sm + small[0]).clamp(0.0, 1.0), err_sm, ref_sm)
        outputs = tuple(unflatten_time(t, src) for t in outputs)
        return outputs + (state,) if self.convlstm else outputs


def convlstm_keys(model: nn.Module) -> set[str]:
    return {k for k in model.state_dict() if ".convLSTM" in k}


def load_bgmv2_state(model: MattingBase, state: dict[str, Tensor]) -> list[str]:
    """Load an official BackgroundMattingV2 state dict: strict for a plain model; for the ConvLSTM variant strict on
    every key but the ConvLSTMs', which keep their fresh initialisation (returned). Raises RuntimeError on any
    other missing, unexpected or misshapen key."""
    if not model.convlstm or any(".convLSTM" in k for k in state):
        model.load_state_dict(state, strict=True)
        return []
    result = model.load_state_dict(state, strict=False)
    fresh = convlstm_keys(model)
    stray = [k for k in result.missing_keys if k not in fresh] + list(result.unexpected_keys)
    if stray:
        raise RuntimeError(f"state dict does not match BackgroundMattingV2: {', '.join(stray[:5])}")
    return sorted(result.missing_keys)
