"""The config tree as the tests read it (importable: pytest puts tests/ on sys.path).

configs/methods/<m>.gin binds a learner (and includes the method it extends); its first comment
block names its run with a ``# run: runs/<r>.gin`` line; configs/runs/<r>.gin binds the trainer
and the phases. Methods are listed from the files, not by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

import gin

from hygen import config
from hygen.config import CONFIG_DIR

_INCLUDE = re.compile(r"^include\s+'([^']+)'", re.MULTILINE)
_RUN = re.compile(r"^# run: (runs/\w+)\.gin$", re.MULTILINE)
_LEARNER = re.compile(r"^Trainer\.learner = @(\w+)", re.MULTILINE)


def closure(path: Path | str) -> str:
    """The text of a gin file and of everything it includes (paths relative to configs/)."""
    text = (CONFIG_DIR / path).read_text()
    return text + "".join(closure(inc) for inc in _INCLUDE.findall(text))


def methods() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "methods").glob("*.gin"))


def run_of(method: str) -> str:
    """``runs/<r>`` named by the method file's ``# run:`` line."""
    found = _RUN.findall((CONFIG_DIR / "methods" / f"{method}.gin").read_text())
    assert len(found) == 1, f"configs/methods/{method}.gin needs one '# run: runs/<name>.gin' line"
    return found[0]


def files_of(method: str) -> list[str]:
    """The gin files of a method's run: the method, then its run."""
    return [f"methods/{method}", run_of(method)]


def learner_of(method: str) -> str:
    bound = _LEARNER.findall(closure(f"methods/{method}.gin"))
    return bound[0]  # the method's own binding comes before what it includes


def bound_keys(files, params=()) -> set[str]:
    """The configurable.parameter keys (and macros) a list of gin files binds, after includes."""
    config.reset()
    config.parse_config(list(files), list(params), unused_macros_ok=True)
    keys = set(re.findall(r"^([\w/.]+) = ", gin.config_str(), re.MULTILINE))
    config.reset()
    return keys
