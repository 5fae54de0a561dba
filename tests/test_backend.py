"""The environment backend as a gin binding (environment.backend = @SC2Env / @SimEnv): every
runner of train and evaluate builds its environments through it; SC2 absent is a clear error."""

import importlib.util
from typing import ClassVar

import gin
import pytest

from hygen.cli import main
from hygen.envs import CALIBRATED_GAME, LEGACY_GAME, VARIED_GAME, SimEnv, make


@gin.configurable
class CountingSimEnv(SimEnv):
    """The simulator, counting how many batched environments were built through the binding."""

    built: ClassVar[list] = []

    def __init__(self, map_name, **kw):
        super().__init__(map_name, **kw)
        CountingSimEnv.built.append(map_name)


TINY = ["--gin_file", "qmix", "--device", "cpu", "--gin_param", "SOURCE_MAPS = ['3m']",
        "--gin_param", "online/Phase.steps = 2",
        "--gin_param", "Trainer.batch_size = 2", "--gin_param", "Trainer.num_envs = 2",
        "--gin_param", "Trainer.eval_episodes = 1", "--gin_param", "Trainer.checkpoint_every = 2"]


def test_train_and_evaluate_build_their_environments_through_the_binding(tmp_path):
    CountingSimEnv.built.clear()
    run = tmp_path / "run"
    assert main(["train", *TINY, "--run_dir", str(run), "--gin_param", "environment.backend = @CountingSimEnv"]) == 0
    assert set(CountingSimEnv.built) == {"3m"} and len(CountingSimEnv.built) >= 2  # training and eval envs
    n = len(CountingSimEnv.built)
    assert main(["evaluate", str(run), "--episodes", "1", "--device", "cpu"]) == 0  # the stored config's binding
    assert len(CountingSimEnv.built) > n
    assert "environment.backend = @CountingSimEnv" in (run / "config.gin").read_text()


def test_make_uses_the_binding_and_an_explicit_backend_wins():
    gin.parse_config("environment.backend = @CountingSimEnv")
    CountingSimEnv.built.clear()
    make("3m", num_envs=2)
    assert CountingSimEnv.built == ["3m"]
    assert type(make("3m", backend="sim")) is SimEnv and CountingSimEnv.built == ["3m"]
    with pytest.raises(ValueError, match="unknown env backend 'starcraft'"):
        make("3m", backend="starcraft")


@pytest.mark.skipif(importlib.util.find_spec("smac") is not None, reason="SMAC is installed here")
def test_sc2_backend_without_smac_is_one_clear_error(tmp_path, capsys):
    run = tmp_path / "sc2"
    assert main(["train", *TINY, "--run_dir", str(run), "--gin_param", "environment.backend = @SC2Env"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hygen train: error: cannot import smac")
    assert "pip install git+https://github.com/oxwhirl/smac.git" in err and "Traceback" not in err
    assert not run.exists()  # refused before anything was written


def test_simulator_bindings_apply_without_binding_the_backend():
    """`SimEnv.collisions = False` (docs/simulator.md) reaches every environment make() builds,
    also when environment.backend is left unbound; unbound parameters keep their defaults."""
    gin.parse_config(["SimEnv.collisions = False", "SimEnv.sticky_retaliation = False"])
    env = make("3m", num_envs=2)
    assert type(env) is SimEnv and not env.collisions and not env.sticky_retaliation and env.formation_move
    assert not env.ally_ai
    gin.clear_config()
    assert make("3m", num_envs=2).collisions


@pytest.mark.parametrize("gin_file, game", [("envs/calibrated", CALIBRATED_GAME), ("envs/legacy", LEGACY_GAME),
                                            ("envs/varied", VARIED_GAME)])
def test_the_game_files_bind_the_games_hygen_envs_spells(gin_file, game):
    """envs/calibrated.gin, envs/legacy.gin and envs/varied.gin are hygen.envs.CALIBRATED_GAME,
    LEGACY_GAME and VARIED_GAME (the benchmarks' and tests' spelling), every mechanic bound (a
    mechanic a game does not name is off), so a command that names its game keeps it whatever
    the default becomes; the calibrated game is the default."""
    from hygen.config import parse_config
    from hygen.envs import MECHANICS

    default = make("3m", num_envs=1)
    assert default.game == {k: CALIBRATED_GAME.get(k, False) for k in MECHANICS}
    assert set(LEGACY_GAME) == set(CALIBRATED_GAME) and not any(LEGACY_GAME.values())
    # bound the other way first: the file must bind them itself
    parse_config([], [f"SimEnv.{k} = {not game.get(k, False)}" for k in ("collision_variation", "ordered_fire")])
    parse_config([gin_file])
    assert make("3m", num_envs=1).game == {k: game.get(k, False) for k in MECHANICS}


def test_a_game_record_without_a_mechanic_had_it_off():
    """Records made before a mechanic existed do not name it: it was off, so they still match a
    game that leaves it off and differ from one that turns it on."""
    from hygen.config import parse_config
    from hygen.envs import bound_game, game_differences

    parse_config(["envs/legacy"])
    now = bound_game("3m")
    old = {k: v for k, v in now.items() if k != "reissue_lockout"}
    assert now["backend"] == "sim" and not now["reissue_lockout"]
    assert game_differences(old, now) == []
    assert game_differences(old, {**now, "reissue_lockout": True}) == ["reissue_lockout: False / True"]
    assert game_differences({"backend": "sc2"}, now) == ["backend: sc2 / sim"]


def test_a_run_is_replayed_in_its_recorded_game():
    """bind_recorded_game: a record without a game predates the record (the legacy game), one
    with it is played as recorded; an unchanged game binds nothing."""
    from hygen.envs import bind_recorded_game, recorded_game

    assert recorded_game({}) == {"backend": "sim"}
    assert bind_recorded_game({"game": {"backend": "sim", **CALIBRATED_GAME}}) == []
    assert make("3m", num_envs=1).collisions
    diff = bind_recorded_game({"seed": 0})
    assert "collisions: False / True" in diff and len(diff) == len(CALIBRATED_GAME)
    env = make("3m", num_envs=1)
    assert not any(getattr(env, k) for k in LEGACY_GAME)
