"""The explicit training loop (RVM recipe): matting steps on composited clips, interleaved segmentation steps,
optional high-resolution pass through the refiner, Adam with a learning rate per network part, AMP on CUDA,
self-describing checkpoints that resume exactly, progress on stderr and optional TensorBoard."""

from __future__ import annotations

import contextlib
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..io.atomic import atomic_path
from .config import load_config
from .data import ClipComposer, build_source
from . import kinds
from .losses import segmentation_loss

CHECKPOINT_FORMAT = "vidmatte-train-checkpoint"
CHECKPOINT_VERSION = 1
PARTS = ("backbone", "aspp", "decoder", "refiner")


def part_of(parameter_name: str) -> str:
    """Which learning-rate group a parameter belongs to (the heads train with the decoder, as in RVM; FTP-VM's
    memory fusion and both decoders are "decoder" too)."""
    head = parameter_name.split(".", 1)[0]
    return head if head in ("backbone", "aspp", "refiner") else "decoder"


def build_model(model_cfg: dict, cache: str | None = None):
    """The model the config's ``model.kind`` names (see ``kinds.KINDS``)."""
    return kinds.call(model_cfg, "build", model_cfg, cache)


def set_batchnorm_eval(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()


class StepBatches(torch.utils.data.Dataset):
    """Map-style view of the composer indexed by step (so DataLoader workers stay deterministic)."""

    def __init__(self, composer: ClipComposer, train_cfg: dict):
        self.composer, self.cfg = composer, train_cfg

    def __len__(self) -> int:
        return self.cfg["steps"]

    def __getitem__(self, step: int) -> dict:
        cfg, size = self.cfg, tuple(self.cfg["size"])
        batch = {"lr": self.composer.matting_batch(step, cfg["batch_size"], cfg["seq_length"], size)}
        if cfg["hr"]:
            hr = cfg["hr"]
            batch["hr"] = self.composer.matting_batch(step, cfg["batch_size"], hr["seq_length"], tuple(hr["size"]),
                                                      stream=1)
        if cfg["seg_every"] and self.composer.segmentation and (step + 1) % cfg["seg_every"] == 0:
            batch["seg"] = self.composer.segmentation_batch(step, cfg["seg_batch_size"], cfg["seg_seq_length"], size)
        return batch


class Trainer:
    def __init__(self, config: dict, log=None, cache: str | None = None):
        self.config, self.log = config, log if log is not None else sys.stderr
        tcfg = config["train"]
        self._seed_everything(config["seed"])
        if tcfg["threads"]:
            torch.set_num_threads(int(tcfg["threads"]))
        from ..backends.torch_runner import pick_device

        self.device = pick_device(tcfg["device"])
        self.model = build_model(config["model"], cache).to(self.device)
        self.optimizer = torch.optim.Adam(self._param_groups(tcfg["lr"]))
        self.amp_dtype = self._amp_dtype(tcfg["amp"])
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        data = config["data"]
        self.composer = ClipComposer(
            [build_source(s) for s in data["mattes"]], [float(s.get("weight", 1.0)) for s in data["mattes"]],
            [build_source(s) for s in data["backgrounds"]], [build_source(s) for s in data["segmentation"]],
            config["seed"], data["augmentation"], data["temporal"])
        self.batches = StepBatches(self.composer, tcfg)
        self.step = 0  # number of completed steps
        self.output_dir = Path(config["output_dir"])
        self.writer = None
        if tcfg["resume"]:
            self.load_checkpoint(tcfg["resume"])

    # -------------------------------------------------------------------------------------------- setup
    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % (2 ** 32))
        torch.manual_seed(seed)

    def _param_groups(self, lrs: dict) -> list[dict]:
        groups = {part: [] for part in PARTS}
        for name, param in self.model.named_parameters():
            groups[part_of(name)].append(param)
        return [{"params": params, "lr": float(lrs.get(part, 0.0)), "name": part}
                for part, params in groups.items() if params]

    def _amp_dtype(self, amp) -> torch.dtype | None:
        if amp in ("off", False):
            return None
        if amp == "bf16":
            return torch.bfloat16
        if amp in ("fp16", True) or (amp == "auto" and self.device.type == "cuda"):
            return torch.float16 if self.device.type == "cuda" else torch.bfloat16
        return None

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # -------------------------------------------------------------------------------------------- steps
    def _train_mode(self) -> None:
        self.model.train()
        if self.config["model"]["freeze_batchnorm"]:
            set_batchnorm_eval(self.model)

    def _optimise(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config["train"]["grad_clip"]:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(self.config["train"]["grad_clip"]))
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def _matting_terms(self, clip: dict, downsample_ratio: float) -> dict:
        with self._autocast():
            return kinds.call(self.config["model"], "terms", self.model, clip, self.device, downsample_ratio)

    def train_step(self, batch: dict) -> dict[str, float]:
        """One matting step (+ high-res pass) and, when the batch carries one, one segmentation step."""
        self._train_mode()
        terms = self._matting_terms(batch["lr"], 1.0)
        total = terms["total"]
        logged = {f"lr/{k}": float(v.detach()) for k, v in terms.items()}
        if "hr" in batch:
            hr_terms = self._matting_terms(batch["hr"], float(self.config["train"]["hr"]["downsample_ratio"]))
            total = total + hr_terms["total"]
            logged.update({f"hr/{k}": float(v.detach()) for k, v in hr_terms.items()})
        if not torch.isfinite(total):
            raise FloatingPointError(f"loss became {float(total)} at step {self.step + 1}")
        self._optimise(total)
        logged["loss"] = float(total.detach())
        if "seg" in batch:
            with self._autocast():
                logits, *_ = self.model(batch["seg"]["src"].to(self.device), segmentation_pass=True)
            seg = segmentation_loss(logits.float(), batch["seg"]["seg"].to(self.device))
            self._optimise(seg)
            logged["seg/bce"] = float(seg.detach())
        self.step += 1
        return logged

    def _batches(self, end: int):
        workers = int(self.config["data"]["workers"])
        steps = range(self.step, end)
        if workers <= 0:
            return (self.batches[s] for s in steps)
        loader = torch.utils.data.DataLoader(self.batches, batch_size=None, sampler=list(steps), num_workers=workers,
                                             persistent_workers=False)
        return iter(loader)

    def run(self, steps: int | None = None) -> list[dict]:
        """Train until ``steps`` completed steps (default train.steps). Returns the per-step logs."""
        tcfg = self.config["train"]
        end = min(steps if steps is not None else tcfg["steps"], tcfg["steps"])
        history, started = [], time.perf_counter()
        self._open_writer()
        for batch in self._batches(end):
            logged = self.train_step(batch)
            history.append(logged)
            self._log(logged, started, end)
            if tcfg["checkpoint_every"] and self.step % int(tcfg["checkpoint_every"]) == 0 and self.step < end:
                self.save_checkpoint(self.output_dir / f"step{self.step:07d}.pt")
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        return history

    # -------------------------------------------------------------------------------------------- logging
    def _open_writer(self) -> None:
        if self.writer is not None or not self.config["train"]["tensorboard"]:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return  # optional: training does not need TensorBoard
        self.writer = SummaryWriter(str(self.output_dir / "tensorboard"))

    def _log(self, logged: dict, started: float, end: int) -> None:
        if self.writer is not None:
            for key, value in logged.items():
                self.writer.add_scalar(key, value, self.step)
        every = int(self.config["train"]["log_every"])
        if every and (self.step % every == 0 or self.step == end):
            parts = " ".join(f"{k}={v:.4f}" for k, v in logged.items())
            elapsed = time.perf_counter() - started
            print(f"train {self.config['name']}: step {self.step}/{end} {parts} ({elapsed:.1f}s)", file=self.log,
                  flush=True)

    # -------------------------------------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": self.config,
            "step": self.step,
            "model_args": self.model.model_args(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }

    def save_checkpoint(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp name, then rename); the file alone is enough to resume or to run inference."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as part:
            torch.save(self.checkpoint(), part)
        return path

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        blob = read_checkpoint(path)
        held, wanted = blob["config"]["model"].get("kind", "rvm"), self.config["model"]["kind"]
        if held != wanted or blob["model_args"].get("variant") != getattr(self.model, "variant", None):
            raise ValueError(f"{path} holds a {blob['model_args'].get('variant', held)} model, the config asks "
                             f"for {getattr(self.model, 'variant', wanted)}")
        self.model.load_state_dict(blob["model"], strict=True)
        self.optimizer.load_state_dict(blob["optimizer"])
        # Learning rates come from the (possibly edited) config, not from the checkpoint.
        for group in self.optimizer.param_groups:
            group["lr"] = float(self.config["train"]["lr"].get(group.get("name"), group["lr"]))
        self.scaler.load_state_dict(blob["scaler"])
        torch.set_rng_state(blob["torch_rng"])
        self.step = int(blob["step"])


def read_checkpoint(path: str | os.PathLike) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    # weights_only: a checkpoint holds tensors and plain data, so no arbitrary pickled code is ever run.
    try:
        blob = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, not a torch file, foreign pickle...
        raise ValueError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0] if str(exc) else exc!r}") \
            from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a vidmatte training checkpoint")
    return blob


def train_from_config(path: str | None, overrides: list[str], log=None) -> Path:
    """Load the config, train, save ``<output_dir>/last.pt``; returns its path."""
    log = log if log is not None else sys.stderr
    config = load_config(path, overrides)
    trainer = Trainer(config, log=log)
    start = trainer.step
    if start >= config["train"]["steps"]:
        print(f"train {config['name']}: already at step {start} of {config['train']['steps']}", file=log)
    history = trainer.run()
    out = trainer.save_checkpoint(trainer.output_dir / "last.pt")
    if history:
        first, last = history[0]["loss"], history[-1]["loss"]
        print(f"train {config['name']}: steps {start + 1}..{trainer.step}, loss {first:.4f} -> {last:.4f}; "
              f"checkpoint {out}", file=log)
    return out
