"""The modes: one row each, the one place that turns "a mode and its settings" into a job and its matter.

Every front end is a translator onto this layer: the CLI maps its arguments to a mode's settings
(``Mode.settings_from(vars(args))``), the API its keyword arguments, the page its JSON, and a batch task carries
``(mode name, settings)`` (a chunk of a long video is ``dataclasses.replace(settings, start_frame=...)``). Add a
mode by adding a module beside these (its settings dataclass and ``build``) and a row below.
"""

from __future__ import annotations

from ..errors import UsageError
from . import background, convert, guided
from .base import Mode, RunSettings

MODES: dict[str, Mode] = {
    "convert": Mode("convert", convert.ConvertSettings, convert.KINDS, (), chunkable=True,
                    builder=convert.build, summary="RVM alone: people, no guidance"),
    # Keyframes propagate over the whole clip in both directions: a chunk could not see the keyframes of the others.
    "guided": Mode("guided", guided.GuidedSettings, guided.KINDS, guided.METHODS, chunkable=False,
                   builder=guided.build, summary="any object marked on keyframes"),
    # The plate needs no state from earlier frames, but RVM's person prior does: not chunked, like guided items.
    "background": Mode("background", background.BackgroundSettings, background.KINDS, background.METHODS,
                       chunkable=False, builder=background.build,
                       summary="whatever differs from a clean plate"),
}
# The page's first names for two modes, still accepted (a saved job, a script calling its API).
ALIASES = {"auto": "convert", "plate": "background"}


def mode(name: str) -> Mode:
    """The mode called ``name`` (or one of its former names), else a one-line UsageError."""
    found = MODES.get(ALIASES.get(name, name))
    if found is None:
        raise UsageError(f"mode must be one of {', '.join(MODES)}, not {name!r}")
    return found


__all__ = ["MODES", "ALIASES", "Mode", "RunSettings", "mode"]
