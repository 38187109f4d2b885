"""The weights a server's admin put in ``vidmatte serve --checkpoints DIR``, for the page's network methods.

Nobody uploads a 1 GB checkpoint through a page: the admin drops the files in a folder, the server reads each one
once when it starts, recognises its network family (``backends.exporters``: our training checkpoints' model.kind,
or a parameter name only the official state dict has) and offers it where that family fits: FTP-VM, DVM and TCVOM's
TGM under guided matting (``matters.networks.GUIDED_NETWORKS``), BackgroundMattingV2 under plate matting. A file it
cannot use is listed with its reason, so the page can say why it is not offered. Jobs name a file by its name in
the folder; only the server knows where the folder is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError, VidmatteError

NO_FOLDER = ("no trained weights for the network methods ship with vidmatte, and this server was started without "
             "--checkpoints DIR: only the classical methods are offered")


def page_methods() -> dict[str, tuple[str, str]]:
    """Network family (``backends.exporters.EXPORTABLE`` row) -> (page mode, method) it runs as."""
    from ..matters.networks import GUIDED_NETWORKS

    return {"bgmv2": ("background", "neural"), **{name: ("guided", name) for name in GUIDED_NETWORKS}}


@dataclass(frozen=True)
class Weights:
    name: str  # the file's name in the folder: what the page shows and a job records
    path: Path
    mode: str  # the mode it serves: guided or background
    method: str  # that mode's method: a GUIDED_NETWORKS name, or neural

    def public(self) -> dict:
        return {"name": self.name, "mode": self.mode, "method": self.method}


@dataclass
class Catalogue:
    folder: Path | None = None
    usable: dict[str, Weights] = field(default_factory=dict)  # file name -> its weights
    refused: dict[str, str] = field(default_factory=dict)  # file name -> why the page does not offer it

    def find(self, name: str | None, mode: str, method: str) -> Weights:
        """The file a run asks for, if it is here and fits the mode and method; UsageError otherwise."""
        if self.folder is None:
            raise UsageError(NO_FOLDER)
        weights = self.usable.get(name) if isinstance(name, str) else None
        if weights is None:
            raise UsageError(f"choose the weights of {method}: {name!r} is not a usable file of the server's "
                             "--checkpoints folder")
        if (weights.mode, weights.method) != (mode, method):
            raise UsageError(f"{name} holds {weights.method} weights ({weights.mode} mode), not {method}")
        return weights

    def public(self) -> dict:
        return {"folder": self.folder is not None, "weights": [w.public() for w in self.usable.values()],
                "refused": [{"name": n, "reason": r} for n, r in self.refused.items()],
                "note": NO_FOLDER if self.folder is None else ""}


def read_catalogue(folder: str | Path | None) -> Catalogue:
    """Every file of ``folder`` read once (hidden files and subfolders aside); None: no folder, no networks."""
    if folder is None:
        return Catalogue()
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UsageError(f"--checkpoints {folder}: not a folder")
    catalogue = Catalogue(folder)
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            catalogue.usable[path.name] = _recognise(path)
        except VidmatteError as exc:
            catalogue.refused[path.name] = _short(str(exc).replace(str(path), path.name))
    return catalogue


def _short(reason: str, limit: int = 160) -> str:
    """A reason the page can show in a line (torch's own messages run on for a paragraph)."""
    return reason if len(reason) <= limit else reason[:limit - 1].rstrip() + "…"


def _recognise(path: Path) -> Weights:
    from ..backends.exporters import CHECKPOINT_SUFFIXES, family_of
    from ..backends.torch_runner import read_torch_file

    if not path.name.endswith(CHECKPOINT_SUFFIXES):
        raise UsageError(f"not a weights file (one of {', '.join(CHECKPOINT_SUFFIXES)})")
    found = family_of(read_torch_file(path))
    fits = page_methods()
    if found is None or found[0] not in fits:
        raise UsageError(f"not weights of a network the page runs ({', '.join(fits)})")
    mode, method = fits[found[0]]
    return Weights(path.name, path, mode, method)
