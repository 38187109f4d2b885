"""The official FTP-VM checkpoint's keys and shapes, derived from the official module definitions (facts read from
csvt32745/FTP-VM at 9fa2c7b, ``FTPVM/*.py``, and timm 0.4.12's ``mobilenetv3_large_100`` feature extractor that
``FTPVM/backbone.py`` creates), independently of ``vidmatte.models.ftpvm``. Each group records the file and class
it comes from. Run as a script to regenerate ``ftpvm_official_state_dict.json``; the tests read the JSON.

The official ``saves/ftpvm.pth`` itself is not available here (not in the stored snapshot, and we download no weights
from GitHub), so strict loading is checked against this layout, not against the file.
"""

from __future__ import annotations

import json
from pathlib import Path

JSON_PATH = Path(__file__).with_name("ftpvm_official_state_dict.json")


class Layout:
    def __init__(self):
        self.entries: dict[str, dict] = {}
        self.source = ""

    def conv(self, name, cin, cout, k, bias=True, groups=1):
        self.entries[f"{name}.weight"] = {"shape": [cout, cin // groups, k, k], "from": self.source}
        if bias:
            self.entries[f"{name}.bias"] = {"shape": [cout], "from": self.source}

    def linear(self, name, cin, cout):
        self.entries[f"{name}.weight"] = {"shape": [cout, cin], "from": self.source}
        self.entries[f"{name}.bias"] = {"shape": [cout], "from": self.source}

    def norm(self, name, c, batch=True):
        for p in ("weight", "bias") + (("running_mean", "running_var") if batch else ()):
            self.entries[f"{name}.{p}"] = {"shape": [c], "from": self.source}
        if batch:
            self.entries[f"{name}.num_batches_tracked"] = {"shape": [], "from": self.source}

    # composite blocks, as the official files define them
    def resblock(self, name, cin, cout):  # basic_block.py ResBlock
        if cin != cout:
            self.conv(f"{name}.skip", cin, cout, 3)
        self.conv(f"{name}.conv1", cin, cout, 3)
        self.conv(f"{name}.conv2", cout, cout, 3)

    def gru(self, name, c):  # basic_block.py ConvGRU
        self.conv(f"{name}.ih.0", 2 * c, 2 * c, 3)
        self.conv(f"{name}.hh.0", 2 * c, c, 3)

    def gru_upsampling(self, name, cin, skip, src, cout):  # basic_block.py GRUUpsamplingBlock(WithoutSkip)
        self.conv(f"{name}.conv.0", cin + skip + src, cout, 3, bias=False)
        self.norm(f"{name}.conv.1", cout)
        self.gru(f"{name}.gru", cout // 2)


def _divisible(v, d=8):
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def timm_mobilenetv3_large_features(lay: Layout, prefix: str) -> None:
    """timm 0.4.12 efficientnet_blocks / mobilenetv3 ``_gen_mobilenet_v3`` arch_def for 'large', features_only
    (MobileNetV3Features builds every stage): ds_r1_k3_s1_e1_c16 | ir_r1_k3_s2_e4_c24, ir_r1_k3_s1_e3_c24 |
    ir_r3_k5_s2_e3_c40_se0.25 | ir_r1_k3_s2_e6_c80, ir_r1_k3_s1_e2.5_c80, ir_r2_k3_s1_e2.3_c80 |
    ir_r2_k3_s1_e6_c112_se0.25 | ir_r3_k5_s2_e6_c160_se0.25 | cn_r1_k1_s1_c960; SE reduce = make_divisible(mid/4)."""
    lay.source = "timm 0.4.12 mobilenetv3_large_100 (features_only) via FTPVM/backbone.py Backbone"
    lay.conv(f"{prefix}.conv_stem", 3, 16, 3, bias=False)
    lay.norm(f"{prefix}.bn1", 16)
    stages = [[(16, 1, 16, 3, False)],
              [(16, 4, 24, 3, False), (24, 3, 24, 3, False)],
              [(24, 3, 40, 5, True), (40, 3, 40, 5, True), (40, 3, 40, 5, True)],
              [(40, 6, 80, 3, False), (80, 2.5, 80, 3, False), (80, 2.3, 80, 3, False), (80, 2.3, 80, 3, False)],
              [(80, 6, 112, 3, True), (112, 6, 112, 3, True)],
              [(112, 6, 160, 5, True), (160, 6, 160, 5, True), (160, 6, 160, 5, True)]]
    for s, blocks in enumerate(stages):
        for j, (cin, expand, cout, k, se) in enumerate(blocks):
            b = f"{prefix}.blocks.{s}.{j}"
            if s == 0:  # DepthwiseSeparableConv
                lay.conv(f"{b}.conv_dw", cin, cin, k, bias=False, groups=cin)
                lay.norm(f"{b}.bn1", cin)
                lay.conv(f"{b}.conv_pw", cin, cout, 1, bias=False)
                lay.norm(f"{b}.bn2", cout)
                continue
            mid = _divisible(cin * expand)
            lay.conv(f"{b}.conv_pw", cin, mid, 1, bias=False)
            lay.norm(f"{b}.bn1", mid)
            lay.conv(f"{b}.conv_dw", mid, mid, k, bias=False, groups=mid)
            lay.norm(f"{b}.bn2", mid)
            if se:
                lay.conv(f"{b}.se.conv_reduce", mid, _divisible(mid * 0.25), 1)
                lay.conv(f"{b}.se.conv_expand", _divisible(mid * 0.25), mid, 1)
            lay.conv(f"{b}.conv_pwl", mid, cout, 1, bias=False)
            lay.norm(f"{b}.bn3", cout)
    lay.conv(f"{prefix}.blocks.6.0.conv", 160, 960, 1, bias=False)
    lay.norm(f"{prefix}.blocks.6.0.bn1", 960)


def official_layout() -> dict[str, dict]:
    """FastTrimapPropagationVideoMatting() with its defaults: ch_bottleneck=128, ch_key=32, ch_seg=[96,48,16],
    ch_mat=[64,32,16,8], ch_mask=1; backbone channels (16, 24, 40, 112) (feature_info, out_indices 0..3)."""
    lay = Layout()
    timm_mobilenetv3_large_features(lay, "backbone.backbone")
    ch = [16, 24, 40, 112]
    lay.source = "FTPVM/module.py TrimapGatedFusion (GatedConv2d from basic_block.py)"
    for i in range(4):
        cin = ch[i] + 1 + (ch[i - 1] if i else 0)
        lay.conv(f"trimap_fuse.gated_convs.{i}.0.conv", cin, 2 * ch[i], 3)
        lay.norm(f"trimap_fuse.gated_convs.{i}.1", ch[i], batch=False)
        lay.conv(f"trimap_fuse.gated_convs.{i}.2", ch[i], ch[i], 3)
        lay.norm(f"trimap_fuse.gated_convs.{i}.4", ch[i], batch=False)
    lay.source = ("FTPVM/module.py BottleneckFusion(112, 32, 112, 128): Projection, FeatureFusion(ResBlock, "
                  "cbam.CBAM), PSP")
    lay.conv("bottleneck_fuse.project_key.conv", 112, 32, 1)
    lay.resblock("bottleneck_fuse.fuse.block", 224, 128)
    lay.linear("bottleneck_fuse.fuse.attention.ChannelGate.mlp.1", 128, 8)
    lay.linear("bottleneck_fuse.fuse.attention.ChannelGate.mlp.3", 8, 128)
    lay.conv("bottleneck_fuse.fuse.attention.SpatialGate.spatial.conv", 2, 1, 7)
    for i in range(4):
        lay.conv(f"bottleneck_fuse.bottleneck.stages.{i}.1", 128, 32, 1, bias=False)
    lay.conv("bottleneck_fuse.bottleneck.bottleneck", 32 * 4 + 128, 128, 1)
    lay.source = "FTPVM/decoder.py SegmentationDecoderTo4x([16,24,40,128], [96,48,16])"
    lay.gru("seg_decoder.decode4.gru", 64)
    lay.gru_upsampling("seg_decoder.decode3", 128, 40, 3, 96)
    lay.resblock("seg_decoder.decode2.out_conv", 96 + 3, 48)
    lay.resblock("seg_decoder.out", 48, 16)
    lay.source = "FTPVM/model.py seg_project = Projection(16, 3)"
    lay.conv("seg_project.conv", 16, 3, 1)
    lay.source = "FTPVM/decoder.py MattingDecoderFrom4x([16,24,40,128], [128,96,48,16], [64,32,16,8])"
    lay.conv("mat_decoder.gated_s16.0", 128, 32, 1)
    lay.norm("mat_decoder.gated_s16.2", 32)
    lay.conv("mat_decoder.gated_s4.0", 48, 32, 1)
    lay.norm("mat_decoder.gated_s4.2", 32)
    lay.resblock("mat_decoder.decode0", 64 + 3, 64)
    lay.resblock("mat_decoder.decode0_1", 24 + 64, 64)
    lay.gru_upsampling("mat_decoder.decode1", 64, 16, 3, 32)
    lay.gru_upsampling("mat_decoder.decode2", 32, 0, 3, 16)
    lay.resblock("mat_decoder.out", 16, 8)
    lay.source = "FTPVM/model.py mat_project = Projection(8, 1); refiner (fast_guided_filter.py) has no parameters"
    lay.conv("mat_project.conv", 8, 1, 1)
    return lay.entries


if __name__ == "__main__":
    JSON_PATH.write_text(json.dumps(official_layout(), indent=1) + "\n")
    print(f"{JSON_PATH}: {len(official_layout())} entries")
