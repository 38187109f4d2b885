"""What the official-layout writers (``tests/*_official_layout.py``) share: torchvision's ResNet Bottleneck stages,
the trunk of three seeds (TCVOM's TGM renames layer1..3 ``res2..res4``; DVM and BGMv2 keep ``layer1..4``)."""

from __future__ import annotations

STAGE_PLANES = (64, 128, 256, 512)  # torchvision ResNet's layer1..layer4; a Bottleneck expands planes x4


def bottleneck_stages(lay, stage_names: list[str], blocks: list[int], cin: int = 64) -> None:
    """Add torchvision Bottleneck stages to ``lay`` (``conv(name, cin, cout, k, bias=False)``, ``bn(name, c)``):
    conv1 1x1, conv2 3x3, conv3 1x1 without biases, each with its BatchNorm, and in each stage's first block the
    projection ``downsample.0``/``.1`` (torchvision adds it where the stride or the channels change: for Bottleneck
    stages after a 64-channel stem, every first block). Stage ``i`` is named ``stage_names[i]`` and has
    ``blocks[i]`` blocks."""
    for stage, count, planes in zip(stage_names, blocks, STAGE_PLANES):
        for i in range(count):
            block = f"{stage}.{i}"
            lay.conv(f"{block}.conv1", cin, planes, 1, bias=False)
            lay.bn(f"{block}.bn1", planes)
            lay.conv(f"{block}.conv2", planes, planes, 3, bias=False)
            lay.bn(f"{block}.bn2", planes)
            lay.conv(f"{block}.conv3", planes, planes * 4, 1, bias=False)
            lay.bn(f"{block}.bn3", planes * 4)
            if i == 0:
                lay.conv(f"{block}.downsample.0", cin, planes * 4, 1, bias=False)
                lay.bn(f"{block}.downsample.1", planes * 4)
            cin = planes * 4
