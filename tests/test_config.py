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
    """Each method with its run, each run, ablation and scale, and each old top-level name parses
    with a task set and data quality (catches typos in configs/)."""
    from config_layout import files_of, methods, run_of

    from hygen.config import CONFIG_DIR, reset

    every = {str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.gin")}
    parsed = set()
    data = ["tasksets/marine_hard", "data/medium"]
    for m in methods():  # a method and its run (QMIX: its run's default map)
        reset()
        parse_config([*files_of(m), *([] if "qmix" in m else data)])
        parsed |= {f"methods/{m}", run_of(m)}
    for p in CONFIG_DIR.rglob("*.gin"):
        name = str(p.relative_to(CONFIG_DIR).with_suffix(""))
        if name.split("/")[0] not in ("ablations", "scales", "envs") and "/" in name:
            continue  # methods, runs (above); tasksets and data (in every parse)
        reset()
        extra = ["NUM_SKILLS = 3"] if p.stem == "skill_count" else []
        if name in ("qmix", "qmix_tuned"):
            parse_config([p], extra)
        elif "/" in name or name in ("no_online", "demo"):  # add-ons go after a method and its run
            parse_config(["hygen", *data, p], extra)
        else:  # an old method name: a shim for its method and run
            parse_config([p, *data], extra)
        parsed.add(name)
    parsed |= {"runs/multi_task", *(f"tasksets/{p.stem}" for p in (CONFIG_DIR / "tasksets").glob("*.gin")),
               *(f"data/{p.stem}" for p in (CONFIG_DIR / "data").glob("*.gin"))}
    assert parsed == every, sorted(every - parsed)


def test_old_top_level_names_are_shims_for_a_method_and_its_run():
    """The old names (hygen, odis, bc_t, ...) keep working for one release: each top-level file
    says it is deprecated, binds nothing, and includes exactly the method and the run its method
    names (or, for no_online and demo, the ablation and the scale)."""
    import re

    from config_layout import methods, run_of

    from hygen.config import CONFIG_DIR

    old = sorted(p.stem for p in CONFIG_DIR.glob("*.gin"))
    assert {"hygen", "odis", "bc_t", "bc_r", "updet_m", "updet_l", "hissd", "qmix", "qmix_tuned", "no_online",
            "demo"} <= set(old)
    for name in old:
        text = (CONFIG_DIR / f"{name}.gin").read_text()
        code = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        includes = re.findall(r"^include '([^']+)\.gin'$", text, re.MULTILINE)
        assert "DEPRECATED" in text and len(code) == len(includes), f"{name}.gin: only includes, said deprecated"
        if name in methods():
            assert includes == [f"methods/{name}", run_of(name)], name
            assert f"--gin_file methods/{name} --gin_file {run_of(name)}" in text  # the comment names them
        else:
            assert includes == [{"no_online": "ablations/no_online", "demo": "scales/demo"}[name]]


LEARNER_CLASSES = ("HyGenLearner", "ActionValueLearner", "HiSSDLearner", "QMIXLearner")


def test_methods_bind_the_learner_and_runs_the_trainer():
    """T5X-style split: a method file binds its learner (and the two trainer settings that belong
    to it: which learner, its target sync); a run binds the trainer and phases and no learner;
    the two bind disjoint things, so their order does not matter."""
    from config_layout import bound_keys, files_of, methods, run_of

    data = ["tasksets/marine_hard", "data/medium"]
    for m in methods():
        method_keys = bound_keys([f"methods/{m}"])
        # runs/offline.gin reads the method's OBJECTIVE (alone: "macro %OBJECTIVE is used but never bound")
        run_keys = bound_keys([run_of(m), *data], ["OBJECTIVE = 'any'"]) - {"OBJECTIVE"}
        assert not method_keys & run_keys, (m, sorted(method_keys & run_keys))
        trainer = {k for k in method_keys if k.startswith("Trainer.")}
        assert trainer <= {"Trainer.learner", "Trainer.target_update_every"}, (m, trainer)
        assert not any(k.split("/")[-1].startswith(LEARNER_CLASSES) for k in run_keys), (m, run_of(m))
        assert bound_keys([*files_of(m), *data]) == bound_keys([*reversed(files_of(m)), *data]), m


@pytest.mark.parametrize("method,learner", [("updet_m", "ActionValueLearner"), ("updet_l", "ActionValueLearner"),
                                            ("hissd", "HiSSDLearner")])
def test_updet_and_hissd_bind_nothing_of_hygen_s_learner(method, learner):
    """They used to include hygen.gin and carry its learner's bindings, inert for them."""
    from config_layout import bound_keys, files_of

    keys = bound_keys([*files_of(method), "tasksets/marine_hard", "data/medium"])
    assert any(k.startswith(f"{learner}.") for k in keys)
    hygen_only = {"HyGenLearner", "MixedCQLLoss", "CloneWonEpisodes", "AttentionTrajectoryEncoder", "NUM_SKILLS",
                  "policy/Phase", "skill_discovery/Phase", "LinearDecayRatio"}
    assert not {k for k in keys if k.split(".")[0] in hygen_only}


@pytest.mark.parametrize("files,params,stray", [
    (["hissd"], ["hissd/Phase.steps = 5"], "hissd/Phase.steps"),  # HiSSD's phase scope before the split
    (["bc_t"], ["skill_discovery/Phase.steps = 5"], "skill_discovery/Phase.steps"),
    (["updet_m", "ablations/fixed_ratio_20"], [], "policy/Phase.sampler"),  # HyGen's phase-2 ablation
])
def test_a_phase_binding_that_names_no_phase_of_the_run_is_an_error(files, params, stray):
    """gin ignores a scope nothing calls: an old scope name would silently change nothing."""
    with pytest.raises(GinConfigError, match=rf"{stray} name no phase of Trainer.phases \(its phases: offline/Phase\)"):
        parse_config([*files, "tasksets/marine_hard", "data/medium"], params)
    from hygen.config import reset

    reset()
    parse_config(["hissd", "tasksets/marine_hard", "data/medium"], ["offline/Phase.steps = 5"])  # the run's phase
