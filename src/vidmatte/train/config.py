"""Training configuration: a YAML (or JSON) file, defaults filled in, ``key.sub=value`` overrides applied.

OmegaConf merges the three: ``DEFAULTS`` is a struct config, so a key it does not name is refused (except inside
``OPEN_SECTIONS``, whose keys are the user's), then ``validate`` checks the values."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

DEFAULTS: dict = {
    "name": "rvm",
    "seed": 0,
    "output_dir": "runs/rvm",
    "model": {
        "kind": "rvm",  # rvm, ftpvm or dvm (variant and refiner do not apply; init "pretrained": RVM's encoder), tgm
                        # (TCVOM's trimap module; init "scratch" or a checkpoint) or bgmv2
        "variant": "mobilenetv3",
        "refiner": "deep_guided_filter",
        # "pretrained" (converted official weights of pretrained_model), "scratch", or a checkpoint/.safetensors path
        "init": "pretrained",
        "pretrained_model": "rvm-mobilenetv3",
        # Keep BatchNorm in inference mode. The converted weights have BatchNorm folded into the convolutions
        # (identity statistics), so batch statistics would change what the pretrained layers compute.
        "freeze_batchnorm": True,
        "width_divisor": 1,  # dvm: every width of the matting network divided (tests, CPU smoke runs)
        # kind bgmv2 (variant: mobilenetv2, resnet50 or resnet101): BackgroundMattingV2's MattingRefine settings
        # (refine_mode null: MattingBase alone) and the seed's ConvLSTMs in the decoder.
        "bgmv2": {"convlstm": True, "backbone_scale": 0.25, "refine_mode": "sampling", "refine_sample_pixels": 80000,
                  "refine_threshold": 0.1, "refine_kernel_size": 3},
    },
    "data": {
        "mattes": [],
        "backgrounds": [],
        "segmentation": [],
        "augmentation": {},
        "temporal": {"max_speed": 1.0, "p_reverse": 0.0},
        "workers": 0,
    },
    "train": {
        "steps": 1000,
        "batch_size": 4,
        "seq_length": 15,
        "size": [512, 512],
        "hr": None,  # {size: [h, w], seq_length: T, downsample_ratio: r}: high-resolution pass through the refiner
        "seg_every": 2,  # a segmentation step after every N-th matting step (0: never)
        "seg_batch_size": 8,
        "seg_seq_length": 1,
        "lr": {"backbone": 1e-4, "aspp": 2e-4, "decoder": 2e-4, "refiner": 0.0},
        "amp": "auto",  # auto: float16 autocast on CUDA, off elsewhere; bf16; off
        "grad_clip": None,
        "device": "auto",
        "threads": None,
        "log_every": 10,
        "checkpoint_every": 500,
        "tensorboard": True,
        "resume": None,
    },
}


class ConfigError(ValueError):
    pass


OPEN_SECTIONS = ("data.augmentation", "data.temporal", "train.lr")  # train.lr's keys are checked in validate


def read_config_file(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    if path.suffix.lower() == ".json":
        loaded = json.loads(text)
    else:
        try:
            import yaml
        except ImportError:
            from ..extras import install_hint

            raise ConfigError(f"YAML configs need PyYAML: {install_hint('train')} (or use a .json config)") \
                from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    return loaded


def parse_value(text: str):
    """``3`` -> 3, ``1e-4`` -> 0.0001, ``[64,64]`` -> list, ``true`` -> True, ``null`` -> None, else the string."""
    try:
        import yaml

        return yaml.safe_load(text)
    except Exception:
        try:
            return json.loads(text)
        except ValueError:
            return text


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None) -> dict:
    """DEFAULTS <- file (or ``base``) <- overrides, then validated."""
    config = OmegaConf.create(DEFAULTS)
    OmegaConf.set_struct(config, True)
    for section in OPEN_SECTIONS:
        OmegaConf.set_struct(OmegaConf.select(config, section), False)
    try:
        config = OmegaConf.merge(config, read_config_file(path) if path else (base or {}))
    except OmegaConfBaseException as exc:
        raise _refusal(exc, exc.full_key) from None
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value (e.g. train.steps=100)")
        try:
            OmegaConf.update(config, key, parse_value(raw), merge=False)
        except OmegaConfBaseException as exc:
            raise _refusal(exc, key) from None
    config = OmegaConf.to_container(config)  # not resolved: a "${...}" in a value is kept as written
    validate(config)
    return config


def _refusal(exc: Exception, key: str) -> ConfigError:
    """OmegaConf's error as one line naming the key: not one the config has, or a value it cannot hold (a date)."""
    if isinstance(exc, (KeyError, AttributeError, IndexError)):  # ConfigKeyError, ConfigAttributeError...
        return ConfigError(f"unknown config key {key}")
    return ConfigError(f"config key {key}: {str(exc).splitlines()[0]}")


def validate(config: dict) -> None:
    train, data = config["train"], config["data"]
    for key in ("steps", "batch_size", "seq_length"):
        if not isinstance(train[key], int) or train[key] < 1:
            raise ConfigError(f"train.{key} must be a positive integer, got {train[key]!r}")
    if not (isinstance(train["size"], list) and len(train["size"]) == 2 and all(int(s) >= 16 for s in train["size"])):
        raise ConfigError(f"train.size must be [height, width] with sides >= 16, got {train['size']!r}")
    if not data["mattes"]:
        raise ConfigError("data.mattes is empty: configure at least one matte source")
    if not data["backgrounds"]:
        raise ConfigError("data.backgrounds is empty: configure at least one background source")
    if train["hr"] is not None:
        hr = train["hr"]
        if not isinstance(hr, dict) or not {"size", "seq_length", "downsample_ratio"} <= set(hr):
            raise ConfigError("train.hr needs size, seq_length and downsample_ratio")
        if not 0 < float(hr["downsample_ratio"]) <= 1:
            raise ConfigError("train.hr.downsample_ratio must be in (0, 1]")
    from .kinds import KINDS, call

    if config["model"]["kind"] not in KINDS:
        raise ConfigError(f"model.kind must be one of {', '.join(KINDS)}, got {config['model']['kind']!r}")
    call(config["model"], "validate", config)
    from ..backends.device import parse_device
    from ..errors import UsageError

    try:
        parse_device(train["device"])  # whether it can be used is decided when the trainer starts (one line, exit 2)
    except UsageError as exc:
        raise ConfigError(f"train.device: {exc}") from None
    if train["amp"] not in ("auto", "off", "bf16", "fp16", False, True):
        raise ConfigError(f"train.amp must be auto, off, bf16 or fp16, got {train['amp']!r}")
    if set(train["lr"]) - {"backbone", "aspp", "decoder", "refiner"}:
        raise ConfigError("train.lr keys are backbone, aspp, decoder, refiner")
