"""Strict gin parsing: typos are errors that name the file or binding."""

import gin
import pytest

from hygen.config import GinConfigError, parse_config


@gin.configurable
def _toy_component(width: int = 4, depth: int = 2):
    return width, depth


def write(tmp_path, text, name="c.gin"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_valid_file_and_override(tmp_path):
    f = write(tmp_path, "_toy_component.width = 8\n")
    text = parse_config([f], ["_toy_component.depth = 3"])
    assert _toy_component() == (8, 3)
    assert "_toy_component.width = 8" in text


def test_typo_in_configurable_names_file_and_binding(tmp_path):
    f = write(tmp_path, "_toy_componnet.width = 8\n", "typo.gin")
    with pytest.raises(GinConfigError) as e:
        parse_config([f])
    msg = str(e.value)
    assert "typo.gin" in msg and "_toy_componnet" in msg
    assert "_toy_component" in msg.split("did you mean")[1]


def test_typo_in_parameter_is_an_error(tmp_path):
    f = write(tmp_path, "_toy_component.widht = 8\n", "param.gin")
    with pytest.raises(GinConfigError, match=r"param\.gin.*widht"):
        parse_config([f])


def test_bad_command_line_binding_is_named():
    with pytest.raises(GinConfigError, match=r"--gin_param '_toy_component.depht = 1'"):
        parse_config([], ["_toy_component.depht = 1"])


def test_unbound_macro_is_an_error(tmp_path):
    f = write(tmp_path, "WIDTH = 3\n_toy_component.width = %WIDHT\n")
    with pytest.raises(GinConfigError, match=r"%WIDHT.*did you mean: WIDTH"):
        parse_config([f])


def test_missing_file_is_named():
    with pytest.raises(GinConfigError, match="no_such_config"):
        parse_config(["no_such_config.gin"])


def test_include_relative_to_file(tmp_path):
    write(tmp_path, "_toy_component.width = 5\n", "base.gin")
    f = write(tmp_path, "include 'base.gin'\n_toy_component.depth = 7\n", "top.gin")
    parse_config([f])
    assert _toy_component() == (5, 7)


def test_required_macros_are_named(tmp_path):
    f = write(tmp_path, "MAPS = %gin.REQUIRED\n_toy_component.width = %MAPS\n")
    with pytest.raises(GinConfigError, match=r"required macro\(s\) not set: MAPS"):
        parse_config([f])


def test_macro_bound_but_never_used_is_an_error(tmp_path):
    f = write(tmp_path, "MAPS = ['3m']\n_toy_component.width = %MAPS\n")
    with pytest.raises(GinConfigError, match=r"macro MAP is bound but nothing uses it \(did you mean MAPS\?\)"):
        parse_config([f], ["MAP = ['5m']"])  # a misspelt override would silently train on 3m


def test_every_shipped_config_parses():
    """Each method/ablation file parses with a task set and data quality (catches typos in configs/)."""
    from hygen.config import CONFIG_DIR, reset

    methods = [p for p in CONFIG_DIR.rglob("*.gin") if p.parent.name not in ("tasksets", "data")]
    assert len(methods) >= 10
    for p in methods:
        reset()
        extra = ["NUM_SKILLS = 3"] if p.stem == "skill_count" else []
        if p.stem == "qmix":
            parse_config([p], extra)
        else:  # method files include hygen.gin themselves; ablations go after it
            parse_config(["hygen", p, "tasksets/marine_hard", "data/medium"], extra)
