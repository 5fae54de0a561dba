"""Strict gin wiring.

Every component registers itself with ``@gin.configurable`` under its class name.
``parse_config`` imports all of them, then parses files and ``--gin_param`` bindings
one at a time so that an error names the file (or binding) it came from; an unknown
or misspelt configurable, parameter or macro is an error, never silently ignored.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import re
from pathlib import Path

import gin

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

# Modules whose import registers gin configurables. Adding a package of components
# means adding it here.
COMPONENT_MODULES = (
    "hygen.envs",
    "hygen.buffers",
    "hygen.encoders",
    "hygen.mixers",
    "hygen.losses",
    "hygen.learners",
    "hygen.runner",
    "hygen.trainer",
    "hygen.diagnostics",
    "hygen.loggers",
)


class GinConfigError(ValueError):
    """A gin file or binding that cannot be applied; the message names where it came from."""


def import_components() -> None:
    for name in COMPONENT_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a real import error inside the module: surface it
                raise


def resolve_gin_file(name: str | Path) -> Path:
    """A path as given, else relative to ``configs/`` (with or without the .gin suffix)."""
    p = Path(name)
    candidates = [p, CONFIG_DIR / p, p.with_suffix(".gin"), CONFIG_DIR / p.with_suffix(".gin")]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    known = sorted(str(f.relative_to(CONFIG_DIR)) for f in CONFIG_DIR.rglob("*.gin")) if CONFIG_DIR.is_dir() else []
    hint = difflib.get_close_matches(str(name), known, n=3)
    raise GinConfigError(
        f"gin file {str(name)!r} not found (looked in the current folder and {CONFIG_DIR})"
        + (f"; did you mean: {', '.join(hint)}?" if hint else f"; known configs: {', '.join(known)}"))


class _QuietSearch(logging.Filter):
    """gin logs every search path it tried for an include; only a real miss matters (we raise it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Path not found" not in record.getMessage()


logging.getLogger().addFilter(_QuietSearch())


def _add_search_path(path: Path) -> None:
    paths = gin.config._LOCATION_PREFIXES  # gin offers no query; avoid growing it per parse
    if str(path) not in paths:
        gin.add_config_file_search_path(str(path))


def _known_configurables() -> list[str]:
    # gin keeps its registry private; read it for suggestions only.
    registry = getattr(gin.config, "_REGISTRY", None)
    keys = getattr(registry, "_selector_map", {})
    return sorted({str(k).split(".")[-1] for k in keys})


def _explain(e: Exception) -> str:
    msg = str(e).strip()
    m = re.search(r"No configurable matching '([^']+)'", msg)
    if m:
        close = difflib.get_close_matches(m.group(1).split(".")[-1], _known_configurables(), n=3)
        if close:
            msg += f" (did you mean: {', '.join(close)}?)"
    m = re.search(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'", msg)
    if m:
        params = _parameters_of(m.group(1))
        close = difflib.get_close_matches(m.group(2), params, n=3)
        hint = (f" (did you mean: {', '.join(close)}?)" if close
                else f" (its parameters: {', '.join(params)})" if params else "")
        first, _, rest = msg.partition("\n")
        msg = first + hint + ("\n" + rest if rest else "")
    return msg


def _parameters_of(name: str) -> list[str]:
    """Parameter names of a registered configurable (for suggestions only)."""
    import inspect

    registry = getattr(gin.config, "_REGISTRY", None)
    try:
        fn = registry.get_match(name).wrapped
        fn = fn.__init__ if inspect.isclass(fn) else fn
        return [p for p in inspect.signature(fn).parameters if p not in ("self", "args", "kwargs")]
    except Exception:  # noqa: BLE001  (private API: no suggestion rather than a crash)
        return []


def parse_config(gin_files=(), gin_params=(), unused_macros_ok: bool = False) -> str:
    """Parse files then bindings strictly; return the parsed config as text.

    Raises GinConfigError naming the file or binding that failed, or a macro that is used but
    never bound, or bound but never used (a misspelt override; ``unused_macros_ok`` allows it,
    for callers that override the bindings a macro fed).
    """
    import_components()
    _add_search_path(CONFIG_DIR)  # includes are relative to configs/ (T5X style) ...
    for f in gin_files:
        path = resolve_gin_file(f)
        _add_search_path(path.parent)  # ... or to the including file's folder
        try:
            gin.parse_config_file(str(path), skip_unknown=False)
        except Exception as e:  # noqa: BLE001  (gin raises ValueError, SyntaxError, KeyError, IOError, ...)
            raise GinConfigError(f"{path}: {_explain(e)}") from None
    for b in gin_params:
        try:
            gin.parse_config(b, skip_unknown=False)
        except Exception as e:  # noqa: BLE001
            raise GinConfigError(f"--gin_param {b!r}: {_explain(e)}") from None
    _check_macros(unused_macros_ok)
    _check_phase_scopes()
    return gin.config_str()


# Where the configs/ files expect their %gin.REQUIRED macros to come from (for the error).
_MACRO_SOURCES = {"SOURCE_MAPS": "a task set, --gin_file tasksets/marine_hard",
                  "EVAL_MAPS": "a task set, --gin_file tasksets/marine_hard",
                  "DATA_QUALITY": "a data quality, --gin_file data/medium",
                  "NUM_SKILLS": "e.g. --gin_param 'NUM_SKILLS = 6'"}


def _check_macros(unused_ok: bool = False) -> None:
    """Every %MACRO that a binding refers to must be bound (gin only notices at call time),
    and every bound macro must be used."""
    text = gin.config_str()
    # A macro left at %gin.REQUIRED: name the macro, not gin's sentinel.
    required = re.findall(r"^([A-Za-z_][\w.]*)\s*=\s*%gin\.REQUIRED\s*$", text, re.MULTILINE)
    if required:
        where = "; ".join(f"{m}: {_MACRO_SOURCES.get(m, 'a .gin file')}" for m in required)
        raise GinConfigError(f"required macro(s) not set: {', '.join(required)}. Bind them with --gin_file or "
                             f"--gin_param '{required[0]} = ...' ({where})")
    used = set(re.findall(r"%([A-Za-z_][\w.]*)", text))
    for name in sorted(used - {"gin.REQUIRED"}):
        try:
            gin.query_parameter(f"%{name}")
        except ValueError:
            bound = sorted(set(re.findall(r"^([A-Z_][A-Z0-9_]*)\s*=", text, re.MULTILINE)))
            close = difflib.get_close_matches(name, bound, n=3)
            raise GinConfigError(
                f"macro %{name} is used but never bound; set it in a .gin file or with "
                f"--gin_param '{name} = ...'" + (f" (did you mean: {', '.join(close)}?)" if close else "")
            ) from None
    # a bound macro nothing refers to is a misspelt override, e.g. SOURCE_MAP next to SOURCE_MAPS
    unused = sorted(set(re.findall(r"^([A-Za-z_]\w*)\s*=", text, re.MULTILINE)) - used)
    if unused and not unused_ok:
        close = difflib.get_close_matches(unused[0], sorted(used - {"gin.REQUIRED"}), n=1)
        raise GinConfigError(f"macro {unused[0]} is bound but nothing uses it"
                             + (f" (did you mean {close[0]}?)" if close else f"; no binding refers to %{unused[0]}"))


def _check_phase_scopes() -> None:
    """A ``<scope>/Phase.<param>`` binding must name a phase of ``Trainer.phases``: gin ignores a
    scope nothing calls, so an override of a phase the run does not have (an old scope name, a
    typo, an ablation of HyGen's policy phase on a one-phase run) would silently change nothing."""
    text = gin.config_str()
    bound = sorted(set(re.findall(r"^(\w+)/Phase\.(\w+)\s*=", text, re.MULTILINE)))
    try:
        phases = gin.query_parameter("Trainer.phases")
    except ValueError:  # no phases bound: nothing to check against
        return
    used = {str(getattr(ref, "scoped_selector", "")).rpartition("/")[0] for ref in phases or ()}
    stray = [f"{scope}/Phase.{param}" for scope, param in bound if scope not in used]
    if stray:
        have = ", ".join(f"{u}/Phase" for u in sorted(used) if u) or "none"
        raise GinConfigError(f"binding(s) {', '.join(stray)} name no phase of Trainer.phases (its phases: {have}); "
                             "a phase scope nothing uses would be ignored")


def reset() -> None:
    """Forget every binding (tests parse several configs in one process)."""
    gin.clear_config(clear_constants=False)
