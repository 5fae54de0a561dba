"""Replays: frame counts, frames that change when units move, real SC2 and simulator episodes."""

import numpy as np
import pytest

from hygen.render import episode_views, load_episodes, render_episodes, write_animation


def _pixels(img) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def test_real_sc2_episodes_frames_and_motion(real_3m_path, tmp_path):
    batch = load_episodes(real_3m_path, "3m", episodes=2)
    views = episode_views(batch)
    lengths = batch.episode_lengths.tolist()
    assert [v.steps for v in views] == lengths
    frames = render_episodes(views)
    assert len(frames) == sum(L + 1 for L in lengths)  # one frame per state, final state included
    # the first recorded steps: allies walk east 0.04 per step (reference section 6), so pixels change
    v = views[0]
    moved = [t for t in range(v.steps) if not np.allclose(v.ally_xy[t], v.ally_xy[t + 1])]
    assert moved
    t = moved[0]
    assert np.abs(_pixels(frames[t]) - _pixels(frames[t + 1])).sum() > 0
    # the outcome the data records: won episodes end WON
    assert [v.outcome == "won" for v in views] == batch.battle_won.tolist()
    gif = write_animation(frames, tmp_path / "r.gif")
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == len(frames)


def test_a_still_step_draws_the_same_picture_and_a_move_does_not():
    from hygen.buffers.synthetic import random_episodes

    batch = random_episodes("3m", 1, seed=0)
    L = int(batch.episode_lengths[0])
    assert L >= 3
    st = batch.state.clone()
    st[0, 1] = st[0, 0]  # step 1 repeats step 0 exactly
    st[0, 2] = st[0, 0]
    st[0, 2, 2] += 0.05  # ... and at step 2 ally 0 (state columns: health, cooldown, x, y) moved east
    st[0, :, 0] = 1.0  # ally 0 alive throughout
    actions = batch.actions.clone()
    actions[0, :3] = 1  # stop: no attack lines
    batch = type(batch)(**{**batch.__dict__, "state": st, "actions": actions})
    frames = render_episodes(batch)
    a, b, c = (_pixels(frames[t]) for t in range(3))
    header = 44  # step counter and return differ; the battlefield below must not
    assert np.array_equal(a[header:-20], b[header:-20])
    assert np.abs(b[header:-20] - c[header:-20]).sum() > 0


def test_render_command_from_a_run_directory(tmp_path, capsys):
    from hygen.cli import main

    run = tmp_path / "run"
    assert main(["train", "--gin_file", "qmix", "--device", "cpu", "--run_dir", str(run),
                 "--gin_param", "SOURCE_MAPS = ['3m']", "--gin_param", "online/Phase.steps = 2",
                 "--gin_param", "Trainer.batch_size = 2", "--gin_param", "Trainer.num_envs = 2",
                 "--gin_param", "Trainer.eval_episodes = 1", "--gin_param", "Trainer.checkpoint_every = 2"]) == 0
    capsys.readouterr()
    out = tmp_path / "sim.gif"
    assert main(["render", str(run), "--map", "3m", "--episodes", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    n = int(text.split("(")[-1].split()[0])
    steps = [int(line.split(", ")[1].split()[0]) for line in text.splitlines() if line.startswith("episode")]
    assert len(steps) == 2 and n == sum(s + 1 for s in steps)
    from PIL import Image

    with Image.open(out) as im:
        assert im.n_frames == n
    assert main(["render", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["render", str(run)])  # --out is required


def test_mp4_needs_ffmpeg_and_says_so(tmp_path):
    import shutil

    from PIL import Image

    if shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is installed here: MP4s are written")
    with pytest.raises(RuntimeError, match="MP4 needs ffmpeg on PATH"):
        write_animation([Image.new("RGB", (8, 8))], tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="expected .gif or .mp4"):
        write_animation([Image.new("RGB", (8, 8))], tmp_path / "x.avi")
