"""FTP-VM: End-to-End Video Matting With Trimap Propagation (Huang & Lee, CVPR 2023), written for this project from
the published architecture.

Memory frames with their trimaps are encoded once (``encode_imgs_to_value``: the 1/16 backbone feature as the
memory key source, a trimap-gated fusion of all four backbone scales as the value). Each query frame reads the
memory by dot-product attention at 1/16, and two recurrent decoders produce a 3-class trimap (logits, 1/4
resolution upsampled) and a boundary matte; the full matte is the boundary matte inside the predicted unknown
region, 1 in the predicted foreground. ``downsample_ratio`` < 1 runs the network on smaller (16-padded) frames and
brings the full matte back with a grey fast guided filter.

Tensors are [B,T,C,H,W] in 0..1 (trimaps: 0 background, 0.5 unknown, 1 foreground, one channel). With ratio 1,
H and W must be multiples of 16 (as in the official code); the matter pads.

Module and parameter names and shapes follow the official implementation (csvt32745/FTP-VM, ``FTPVM/model.py``,
``module.py``, ``decoder.py``, ``basic_block.py``, ``cbam.py``; the encoder is timm 0.4.12's
``mobilenetv3_large_100`` feature extractor, see ``backbones/mobilenetv3_features.py``), so its ``ftpvm.pth`` loads
with ``strict=True``. The recurrent state is ``[[r8, r16], [r1, r2]]``: the trimap decoder's GRU states at 1/8 and
1/16, then the matte decoder's at 1/1 and 1/2 (None: zeros).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones.mobilenetv3_features import MobileNetV3LargeFeatures
from .rvm import BottleneckBlock, BoxFilter, Projection, UpsamplingBlock, flatten_time, unflatten_time

Recurrent = list  # [[r8, r16], [r1, r2]] of Optional[Tensor]


def no_state() -> Recurrent:
    return [[None, None], [None, None]]


def per_frame(module: nn.Module, x: Tensor) -> Tensor:
    """Apply a 4-D module to [B,T,C,H,W] (or [N,C,H,W]) frame by frame."""
    return unflatten_time(module(flatten_time(x)), x)


def pooled_pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """x at 1/2, 1/4, ... (``levels`` of them): 2x2 mean pooling, ceil mode, as the official AvgPool."""
    out, flat = [], flatten_time(x)
    for _ in range(levels):
        flat = F.avg_pool2d(flat, 2, 2, ceil_mode=True, count_include_pad=False)
        out.append(unflatten_time(flat, x))
    return out


def pad_to_multiple(x: Tensor, multiple: int = 16) -> Tensor:
    """Zero-pad H and W up to a multiple, the extra split evenly (the smaller half first), as the official code."""
    h, w = x.shape[-2:]
    dh, dw = -h % multiple, -w % multiple
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


class ResBlock(nn.Module):
    """relu -> conv3x3 -> relu -> conv3x3, added to the input (through a 3x3 conv when the channels change)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 3, padding=1)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.conv2(F.relu(self.conv1(F.relu(x))))


class GatedConv2d(nn.Module):
    """A conv whose output is split into features (leaky ReLU 0.1) and a sigmoid gate multiplied onto them."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * 2, kernel, 1, padding)
        self.cout = cout

    def forward(self, x: Tensor) -> Tensor:
        features, gate = self.conv(x).split(self.cout, dim=1)
        return F.leaky_relu(features, 0.1) * torch.sigmoid(gate)


# --- memory encoding ------------------------------------------------------------------------------------------

class TrimapGatedFusion(nn.Module):
    """Memory value: the trimap (pooled to each scale) gates the backbone features from 1/2 down to 1/16, each
    scale's result pooled and carried into the next. -> [B,C16,T,h16,w16]."""

    def __init__(self, feature_channels: tuple[int, ...], mask_channels: int = 1):
        super().__init__()
        self.gated_convs = nn.ModuleList([self._scale(feature_channels, i, mask_channels) for i in range(4)])

    @staticmethod
    def _scale(channels: tuple[int, ...], i: int, mask_channels: int) -> nn.Sequential:
        c = channels[i]
        cin = c + mask_channels + (channels[i - 1] if i > 0 else 0)
        return nn.Sequential(GatedConv2d(cin, c), nn.GroupNorm(4, c), nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2),
                             nn.GroupNorm(4, c), nn.AvgPool2d(2) if i < 3 else nn.Identity())

    def forward(self, imgs: Tensor, trimaps: Tensor, feats: list[Tensor]) -> Tensor:
        masks = [flatten_time(m) for m in pooled_pyramid(trimaps, 4)]
        x = self.gated_convs[0](torch.cat([flatten_time(feats[0]), masks[0]], dim=1))
        for i in range(1, 4):
            x = self.gated_convs[i](torch.cat([x, flatten_time(feats[i]), masks[i]], dim=1))
        return unflatten_time(x, feats[0]).transpose(1, 2)


# --- memory read and fusion at 1/16 ---------------------------------------------------------------------------

class ChannelGate(nn.Module):
    """CBAM's channel attention: a shared MLP over the average- and max-pooled channels, summed, sigmoid."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(channels, channels // reduction), nn.ReLU(),
                                 nn.Linear(channels // reduction, channels))

    def forward(self, x: Tensor) -> Tensor:
        logits = self.mlp(x.mean((2, 3))) + self.mlp(x.amax((2, 3)))
        return x * torch.sigmoid(logits)[:, :, None, None]


class BasicConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=(kernel - 1) // 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class SpatialGate(nn.Module):
    """CBAM's spatial attention: a 7x7 conv over the channel max and mean, sigmoid."""

    def __init__(self):
        super().__init__()
        self.spatial = BasicConv(2, 1, 7)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.ChannelGate = ChannelGate(channels)
        self.SpatialGate = SpatialGate()

    def forward(self, x: Tensor) -> Tensor:
        return self.SpatialGate(self.ChannelGate(x))


class FeatureFusion(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.block = ResBlock(cin, cout)
        self.attention = CBAM(cout)

    def forward(self, x: Tensor) -> Tensor:
        flat = self.block(flatten_time(x))
        return unflatten_time(flat + self.attention(flat), x)


class PSP(nn.Module):
    """Pyramid pooling: the feature average-pooled to 1, 2, 4, 8 cells, projected, upsampled, concatenated."""

    def __init__(self, channels: int, per_stage: int, cout: int, sizes: tuple[int, ...] = (1, 2, 4, 8)):
        super().__init__()
        self.stages = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(size), nn.Conv2d(channels, per_stage, 1,
                                                                                         bias=False))
                                     for size in sizes])
        self.bottleneck = nn.Conv2d(per_stage * len(sizes) + channels, cout, 1)

    def _forward(self, x: Tensor) -> Tensor:
        size = x.shape[2:]
        pooled = [self._pool(stage, x) for stage in self.stages]
        priors = [F.interpolate(p, size=size, mode="bilinear", align_corners=True) for p in pooled]
        return F.relu(self.bottleneck(torch.cat(priors + [x], dim=1)))

    def forward(self, x: Tensor) -> Tensor:
        return per_frame(self._forward, x)

    @staticmethod
    def _pool(stage: nn.Sequential, x: Tensor) -> Tensor:
        """The stage's adaptive average pooling, then its conv. The ONNX exporter handles adaptive pooling only
        when the cells divide the input; for export the same cells are averaged by two matrix products."""
        if not torch.onnx.is_in_onnx_export():
            return stage(x)
        cells = stage[0].output_size
        rows, cols = (adaptive_pool_matrix(n, cells, x) for n in x.shape[2:])
        return stage[1](rows @ x @ cols.T)


def adaptive_pool_matrix(size: int, cells: int, like: Tensor) -> Tensor:
    """[cells, size]: row i averages inputs floor(i*size/cells) .. ceil((i+1)*size/cells) - 1, as adaptive pooling."""
    matrix = np.zeros((cells, size), np.float32)  # built outside the graph: a constant in the export
    for i in range(cells):
        start, stop = (i * size) // cells, -((-(i + 1) * size) // cells)
        matrix[i, start:stop] = 1.0 / (stop - start)
    return torch.from_numpy(matrix).to(like)


def read_memory(memory_key: Tensor, query_key: Tensor, memory_value: Tensor) -> Tensor:
    """Dot-product attention over every memory position (softmax over the memory).

    memory_key [B,Ck,Tm,h,w], query_key [B,Ck,Tq,h,w], memory_value [B,Cv,Tm,h,w] -> [B,Tq,Cv,h,w].
    """
    b, ck = memory_key.size(0), memory_key.shape[1]
    h, w = memory_value.shape[-2:]
    affinity = memory_key.flatten(2).transpose(1, 2) @ query_key.flatten(2) / math.sqrt(ck)  # [B, Nm, Nq]
    read = torch.bmm(memory_value.flatten(2), F.softmax(affinity, dim=1))  # [B, Cv, Tq*h*w]
    return read.view(b, read.shape[1], -1, h, w).transpose(1, 2)


class BottleneckFusion(nn.Module):
    """Query 1/16 feature + the memory value read for it -> fused, attended, pyramid-pooled bottleneck feature."""

    def __init__(self, cin: int, key_channels: int, value_channels: int, cout: int):
        super().__init__()
        self.project_key = Projection(cin, key_channels)
        self.fuse = FeatureFusion(cin + value_channels, cout)
        self.bottleneck = PSP(cout, cout // 4, cout)

    def encode_key(self, feat16: Tensor) -> Tensor:
        """[B,T,C,h,w] -> key [B,Ck,T,h,w]."""
        return self.project_key(feat16).transpose(1, 2)

    def forward(self, query16: Tensor, memory16: Tensor, memory_value: Tensor) -> Tensor:
        read = read_memory(self.encode_key(memory16), self.encode_key(query16), memory_value)
        return self.bottleneck(self.fuse(torch.cat([query16, read], dim=2)))


# --- decoders -------------------------------------------------------------------------------------------------

class UpsampleBlock(nn.Module):
    """x2 bilinear upsample, concat a skip, ResBlock (no recurrence)."""

    def __init__(self, skip_channels: int, up_channels: int, cout: int):
        super().__init__()
        self.out_conv = ResBlock(up_channels + skip_channels, cout)

    def forward(self, up: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(flatten_time(up), scale_factor=2.0, mode="bilinear", align_corners=False)
        return unflatten_time(self.out_conv(torch.cat([x, flatten_time(skip)], dim=1)), up)


class UpsamplingBlockWithoutSkip(UpsamplingBlock):
    """RVM's recurrent upsampling block fed only the source image, no encoder feature."""

    def __init__(self, cin: int, src_channels: int, cout: int):
        super().__init__(cin, 0, src_channels, cout)

    def forward(self, x: Tensor, s: Tensor, r: Optional[Tensor]) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        like = x
        x = F.interpolate(flatten_time(x), scale_factor=2.0, mode="bilinear", align_corners=False)
        flat_s = flatten_time(s)
        x = unflatten_time(self.conv(torch.cat([x[:, :, :flat_s.shape[2], :flat_s.shape[3]], flat_s], 1)), like)
        a, b = x.split(self.out_channels // 2, dim=-3)
        b, r = self.gru(b, r)
        return torch.cat([a, b], dim=-3), r


class SegmentationDecoderTo4x(nn.Module):
    """Trimap decoder: GRU at 1/16 and 1/8, then plain upsampling to 1/4."""

    def __init__(self, feature_channels: tuple[int, ...], decoder_channels: tuple[int, ...]):
        super().__init__()
        self.decode4 = BottleneckBlock(feature_channels[3])
        self.decode3 = UpsamplingBlock(feature_channels[3], feature_channels[2], 3, decoder_channels[0])
        self.decode2 = UpsampleBlock(3, decoder_channels[0], decoder_channels[1])
        self.out = ResBlock(decoder_channels[1], decoder_channels[2])

    def forward(self, img4: Tensor, img8: Tensor, f8: Tensor, f16: Tensor, r8: Optional[Tensor],
                r16: Optional[Tensor]) -> tuple[Tensor, list, list[Tensor]]:
        x16, r16 = self.decode4(f16, r16)
        x8, r8 = self.decode3(x16, f8, img8, r8)
        x4 = self.decode2(x8, img4)
        return per_frame(self.out, x4), [r8, r16], [x4, x8, x16]


def conv_relu_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.ReLU(True), nn.BatchNorm2d(cout))


class MattingDecoderFrom4x(nn.Module):
    """Matte decoder: starts at 1/4 from the trimap decoder's 1/4 and 1/16 features, GRUs at 1/2 and 1/1."""

    def __init__(self, feature_channels: tuple[int, ...], skip_channels: tuple[int, ...],
                 decoder_channels: tuple[int, ...]):
        super().__init__()
        half = decoder_channels[0] // 2
        self.gated_s16 = conv_relu_bn(skip_channels[0], half)
        self.gated_s4 = conv_relu_bn(skip_channels[2], half)
        self.decode0 = ResBlock(decoder_channels[0] + 3, decoder_channels[0])
        self.decode0_1 = ResBlock(feature_channels[1] + decoder_channels[0], decoder_channels[0])
        self.decode1 = UpsamplingBlock(decoder_channels[0], feature_channels[0], 3, decoder_channels[1])
        self.decode2 = UpsamplingBlockWithoutSkip(decoder_channels[1], 3, decoder_channels[2])
        self.out = ResBlock(decoder_channels[2], decoder_channels[3])

    def forward(self, img1: Tensor, img2: Tensor, img4: Tensor, f2: Tensor, f4: Tensor, s4: Tensor, s16: Tensor,
                r1: Optional[Tensor], r2: Optional[Tensor]) -> tuple[Tensor, list]:
        s16 = F.interpolate(self.gated_s16(flatten_time(s16)), scale_factor=4.0, mode="nearest")
        x4 = self.decode0(torch.cat([self.gated_s4(flatten_time(s4)), s16, flatten_time(img4)], dim=1))
        x4 = unflatten_time(self.decode0_1(torch.cat([flatten_time(f4), x4], dim=1)), img1)
        x2, r2 = self.decode1(x4, f2, img2, r2)
        x1, r1 = self.decode2(x2, img1, r1)
        return per_frame(self.out, x1), [r1, r2]


# --- fusing the two outputs, and the refiner -------------------------------------------------------------------

def fuse_with_predicted_trimap(trimap_logits: Tensor, boundary: Tensor) -> Tensor:
    """Full matte: the boundary matte where the trimap's argmax is unknown (class 1), 1 where it is foreground.
    The argmax is taken after the sigmoid, as the official code does: saturated classes tie there."""
    label = torch.sigmoid(trimap_logits).argmax(dim=-3, keepdim=True)
    return boundary * (label == 1) + (label == 2).to(boundary.dtype)


def fuse_with_given_trimap(trimap: Tensor, boundary: Tensor) -> Tensor:
    """As above with a given trimap in 0..1 (foreground above 0.99, unknown between 0.01 and 0.99)."""
    foreground = trimap > 1 - 1e-2
    unknown = ~foreground & (trimap > 1e-2)
    return boundary * unknown + foreground.to(boundary.dtype)


def grey_guided_upsample(fine_src: Tensor, base_src: Tensor, base_pha: Tensor, radius: int = 1,
                         eps: float = 1e-5) -> Tensor:
    """Fast guided filter (He & Sun 2015) with the grey frame as the guide: alpha's linear model in the grey level,
    fitted at low resolution, applied at full resolution. [N,3,H,W], [N,3,h,w], [N,1,h,w] -> [N,1,H,W]."""
    box = BoxFilter(radius)
    lr_x, hr_x = base_src.mean(1, keepdim=True), fine_src.mean(1, keepdim=True)
    mean_x, mean_y = box(lr_x), box(base_pha)
    a = (box(lr_x * base_pha) - mean_x * mean_y) / (box(lr_x * lr_x) - mean_x * mean_x + eps)
    b = mean_y - a * mean_x
    size = hr_x.shape[2:]
    a = F.interpolate(a, size, mode="bilinear", align_corners=False)
    b = F.interpolate(b, size, mode="bilinear", align_corners=False)
    return a * hr_x + b


def smaller(x: Tensor, ratio: float) -> Tensor:
    """Bilinear resize by ``ratio``, then zero-padded to multiples of 16 (the official ``_interpolate``)."""
    x2 = F.interpolate(flatten_time(x), scale_factor=ratio, mode="bilinear", align_corners=False,
                       recompute_scale_factor=False)
    return unflatten_time(pad_to_multiple(x2), x)


class FastTrimapPropagationVideoMatting(nn.Module):
    """FTP-VM. The default constructor downloads nothing: weights start at random (or from RVM's encoder, see
    ``init_backbone_from_rvm``) until a checkpoint is loaded."""

    def __init__(self, ch_bottleneck: int = 128, ch_key: int = 32, ch_seg: tuple[int, ...] = (96, 48, 16),
                 ch_mat: tuple[int, ...] = (64, 32, 16, 8), ch_mask: int = 1):
        super().__init__()
        self.backbone = _BackboneHolder()
        channels = self.backbone.channels
        self.trimap_fuse = TrimapGatedFusion(channels, ch_mask)
        self.bottleneck_fuse = BottleneckFusion(channels[-1], ch_key, channels[-1], ch_bottleneck)
        feat_channels = (*channels[:-1], ch_bottleneck)
        self.seg_decoder = SegmentationDecoderTo4x(feat_channels, ch_seg)
        self.seg_project = Projection(ch_seg[-1], 3)
        self.mat_decoder = MattingDecoderFrom4x(feat_channels, (ch_bottleneck, *ch_seg), ch_mat)
        self.mat_project = Projection(ch_mat[-1], 1)
        self.model_config = {"ch_bottleneck": ch_bottleneck, "ch_key": ch_key, "ch_seg": list(ch_seg),
                             "ch_mat": list(ch_mat), "ch_mask": ch_mask}

    def model_args(self) -> dict:
        """Constructor arguments, stored in checkpoints so they describe themselves."""
        return dict(self.model_config)

    # --- the paper's interface -------------------------------------------------------------------------------
    def forward(self, query_imgs: Tensor, memory_imgs: Tensor, memory_trimaps: Tensor,
                rec_seg: Optional[list] = None, rec_mat: Optional[list] = None, downsample_ratio: float = 1,
                segmentation_pass: bool = False, replace_given_seg: bool = False) -> list:
        """query [B,T,3,H,W], memory [B,Tm,3,H,W] with trimaps [B,Tm,1,H,W] -> [trimap logits [B,T,3,h,w],
        boundary mattes [B,T,1,h,w], full mattes [B,T,1,H,W], [rec_seg, rec_mat]] (h, w: the processed size).

        replace_given_seg: the first Tm query frames are the memory frames; their full matte uses the given trimap.
        """
        refine = downsample_ratio != 1
        query_sm, memory_sm, trimaps_sm = ((smaller(x, downsample_ratio) for x in (query_imgs, memory_imgs,
                                                                                  memory_trimaps))
                                           if refine else (query_imgs, memory_imgs, memory_trimaps))
        t = query_sm.shape[1]
        feats = self.backbone(torch.cat([query_sm, memory_sm], dim=1))
        query_feats = [f[:, :t] for f in feats]
        memory_feats = [f[:, t:] for f in feats]
        value = self.trimap_fuse(memory_sm, trimaps_sm, memory_feats)
        query_feats[-1] = self.bottleneck_fuse(query_feats[-1], memory_feats[-1], value)
        given = trimaps_sm if replace_given_seg else None
        return self.decode(query_imgs, query_sm, query_feats, rec_seg, rec_mat, refine, segmentation_pass, given)

    def encode_imgs_to_value(self, memory_imgs: Tensor, memory_trimaps: Tensor,
                             downsample_ratio: float = 1) -> tuple[Tensor, Tensor]:
        """-> (memory 1/16 features [B,Tm,112,h16,w16], memory values [B,112,Tm,h16,w16]): encode once, reuse."""
        if downsample_ratio != 1:
            memory_imgs, memory_trimaps = smaller(memory_imgs, downsample_ratio), smaller(memory_trimaps,
                                                                                         downsample_ratio)
        feats = self.backbone(memory_imgs)
        return feats[-1], self.trimap_fuse(memory_imgs, memory_trimaps, feats)

    def forward_with_memory(self, query_imgs: Tensor, memory_feat16: Tensor, memory_value: Tensor,
                            rec_seg: Optional[list] = None, rec_mat: Optional[list] = None,
                            downsample_ratio: float = 1, segmentation_pass: bool = False) -> list:
        """``forward`` with the memory already encoded (``encode_imgs_to_value``)."""
        refine = downsample_ratio != 1
        query_sm = smaller(query_imgs, downsample_ratio) if refine else query_imgs
        feats = self.backbone(query_sm)
        feats[-1] = self.bottleneck_fuse(feats[-1], memory_feat16, memory_value)
        return self.decode(query_imgs, query_sm, feats, rec_seg, rec_mat, refine, segmentation_pass)

    # --- decoding ------------------------------------------------------------------------------------------------
    def decode(self, query_imgs: Tensor, query_sm: Tensor, feats: list[Tensor], rec_seg: Optional[list],
               rec_mat: Optional[list], refine: bool, segmentation_pass: bool = False,
               given_trimaps: Optional[Tensor] = None) -> list:
        if rec_seg is None or rec_mat is None:
            rec_seg, rec_mat = no_state()
        img2, img4, img8 = pooled_pyramid(query_sm, 3)
        hid, rec_seg, (seg4, _, seg16) = self.seg_decoder(img4, img8, feats[2], feats[3], *rec_seg)
        trimaps = self.seg_project(hid)
        trimaps = unflatten_time(F.interpolate(flatten_time(trimaps), scale_factor=4.0, mode="bilinear",
                                               align_corners=False), trimaps)
        if segmentation_pass:
            return [trimaps, rec_seg]
        hid, rec_mat = self.mat_decoder(query_sm, img2, img4, feats[0], feats[1], seg4, seg16, *rec_mat)
        boundary = torch.sigmoid(self.mat_project(hid))
        full = self._full_matte(trimaps, boundary, given_trimaps)
        if refine:
            full = unflatten_time(grey_guided_upsample(flatten_time(query_imgs), flatten_time(query_sm),
                                                       flatten_time(full)), query_imgs)
        return [trimaps, boundary, full, [rec_seg, rec_mat]]

    @staticmethod
    def _full_matte(trimaps: Tensor, boundary: Tensor, given: Optional[Tensor]) -> Tensor:
        if given is None:
            return fuse_with_predicted_trimap(trimaps, boundary)
        t = given.shape[1]
        head = fuse_with_given_trimap(given, boundary[:, :t])
        return torch.cat([head, fuse_with_predicted_trimap(trimaps[:, t:], boundary[:, t:])], dim=1)

    # --- starting points -----------------------------------------------------------------------------------------
    def init_backbone_from_rvm(self, rvm_state: dict[str, Tensor]) -> None:
        """Start the encoder from RVM's MobileNetV3 (a ``MattingNetwork`` state dict, ``backbone.*``): every
        encoder layer matches (``rvm_name_pairs``); the rest of the network stays as initialised."""
        from .backbones.mobilenetv3_features import rvm_encoder_state

        prefix = "backbone."
        encoder = {k[len(prefix):]: v for k, v in rvm_state.items() if k.startswith(prefix)}
        self.backbone.backbone.load_state_dict(rvm_encoder_state(encoder), strict=True)


class _BackboneHolder(nn.Module):
    """The official ``Backbone`` wrapper: its encoder sits at ``backbone.backbone``; [B,T,...] in, per-frame."""

    def __init__(self):
        super().__init__()
        self.backbone = MobileNetV3LargeFeatures()
        self.channels = MobileNetV3LargeFeatures.channels

    def forward(self, x: Tensor) -> list[Tensor]:
        return [unflatten_time(f, x) for f in self.backbone(flatten_time(x))]
