"""hygen.diagnostics: the numbers by hand, and a short HyGen run recording them in results.json."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hygen.buffers import write_episodes
from hygen.buffers.samplers import LinearDecayRatio, OfflineOnly
from hygen.buffers.synthetic import random_episodes
from hygen.diagnostics import Diagnostics, discounted_returns, distinct_count, pearson, value_return_stats
from hygen.rundir import RunDir
from hygen.trainer import Phase, Trainer


def test_discounted_returns_by_hand():
    reward = torch.tensor([[1.0, 2.0, 4.0, 9.0]]).view(1, 4, 1)
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]]).view(1, 4, 1)  # the last row is padding
    g = discounted_returns(reward, mask, 0.5)[0, :, 0]
    assert g.tolist() == [1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4, 4.0, 0.0]


def test_value_return_stats_by_hand():
    reward = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1)  # gamma 1: G = 1, 1, 1 -> constant: corr undefined
    mask = torch.ones(1, 3, 1)
    s = value_return_stats(torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1), reward, mask, 1.0)
    assert math.isnan(s["value_corr"]) and s["q_tot_mean"] == 2.0 and s["return_mean"] == 1.0
    s = value_return_stats(torch.tensor([3.0, 2.0, 1.0]).view(1, 3, 1), reward, mask, 0.5)  # G = .25, .5, 1
    assert s["value_corr"] == pytest.approx(pearson(torch.tensor([3.0, 2, 1]), torch.tensor([0.25, 0.5, 1])))
    assert s["value_corr"] < -0.9 and s["return_mean"] == pytest.approx(1.75 / 3)


def test_distinct_count_keeps_rows_farther_than_tv():
    h = torch.tensor([[1.0, 0, 0], [0.95, 0.05, 0], [0, 1.0, 0], [0.5, 0.5, 0]])
    assert distinct_count(h, 0.1) == 3  # row 1 is within 0.05 of row 0; row 3 is 0.5 from both kept
    assert distinct_count(h, 0.6) == 2
    assert distinct_count(h[:1], 0.1) == 1


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="play_every"):
        Diagnostics(play_every=0)


def _short_run(tmp_path, name, diagnostics):
    from test_hygen_learning import small_learner

    root = tmp_path / "data"
    if not root.exists():
        write_episodes(root / "3m" / "medium" / "part_0.h5", random_episodes("3m", 20, seed=0))
    torch.manual_seed(0)
    learner = small_learner(maps=["3m"])
    trainer = Trainer(run_dir=RunDir(tmp_path / name), seed=0, device="cpu", learner=learner, source_maps=["3m"],
                      phases=[Phase("skill_discovery", 3, OfflineOnly(), False),
                              Phase("policy", 6, LinearDecayRatio(1.0, 0.1, 4), True)],
                      num_envs=2, episodes_per_step=2, batch_size=4, buffer_size=40, learning_starts=0,
                      eval_every=3, eval_episodes=2, checkpoint_every=100, log_every=3,
                      data_root=str(root), data_quality="medium", offline_episodes=12, diagnostics=diagnostics)
    return trainer.run(), learner


def test_a_short_hygen_run_records_the_diagnostics_and_trains_as_without_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HYGEN_NO_PROGRESS", "1")
    diagnostics = Diagnostics(value_episodes=6, play_episodes=2, play_every=2)
    _, learner = _short_run(tmp_path, "run", diagnostics)
    evals = json.loads((tmp_path / "run" / "results.json").read_text())["evals"]
    plain, plain_learner = _short_run(tmp_path, "plain", None)
    assert [e["win_rate"] for e in plain["evals"]] == [e["win_rate"] for e in evals]  # same training, same tests
    assert [e["return_mean"] for e in plain["evals"]] == [e["return_mean"] for e in evals]
    assert all(torch.equal(a, b) for a, b in zip(learner.params, plain_learner.params))
    assert [e["step"] for e in evals] == [0, 3, 6, 9]
    first, last = evals[0]["diagnostics"]["3m"], evals[-1]["diagnostics"]["3m"]
    # 20 episodes in the file, training keeps the last 12: the first 6 are held out
    assert first["offline_held_out"] == 1.0 and -1.0 <= first["offline_value_corr"] <= 1.0
    assert len(last["label_share"]) == 4 and sum(last["label_share"]) == pytest.approx(1.0)
    assert last["labels_used"] == sum(x > 0.05 for x in last["label_share"]) >= 1
    held_out, _ = diagnostics._held_out["3m"]  # the final encoder's labels, counted by hand
    b = held_out.trim()
    labels = learner.relabelled_skills(b)[(b.avail_actions[:, :-1, :, 1:].sum(-1) > 0) & (b.mask > 0)]
    assert last["label_share"] == pytest.approx((torch.bincount(labels, minlength=4) / len(labels)).tolist())
    assert "online_value_corr" not in first and math.isnan(first["online_win_rate"])  # nothing collected yet
    assert -1.0 <= last["online_value_corr"] <= 1.0 and 0.0 <= last["skill_agreement"] <= 1.0
    assert 0.0 <= last["online_win_rate"] <= 1.0 and last["greedy_win_rate"] == evals[-1]["win_rate"]["3m"]
    # play at evaluations 0 and 2 (play_every=2): one share per skill, one histogram per forced skill
    assert len(first["skill_share"]) == 4 and sum(first["skill_share"]) == pytest.approx(1.0)
    assert len(first["forced_action_hist"]) == 4 and all(len(h) == 7 for h in first["forced_action_hist"])
    assert 1.0 <= first["distinct_forced_play"] <= 4.0 and len(first["forced_win_rate"]) == 4
    assert "skill_share" not in evals[1]["diagnostics"]["3m"] and "skill_share" in evals[2]["diagnostics"]["3m"]
    assert learner.controller().fixed_skill is None  # the forced passes leave the learned policy in place


def test_forced_skill_histograms_match_the_decoder():
    """A forced pass records what the decoder does for that skill. The decoder is set so that
    skill 0 lights hidden unit 0 (-> 'stop'), skill 1 unit 1 and skills 2, 3 unit 2 (both ->
    'north'): two different plays (total variation 0.14 > 0.1), skills 1-3 alike."""
    from test_hygen_learning import small_learner

    learner = small_learner(maps=["3m"])
    dec = learner.action_decoder
    with torch.no_grad():
        dec.basic.weight.zero_(), dec.basic.bias.zero_()
        dec.enemy_key[2].weight.zero_(), dec.enemy_key[2].bias.zero_()  # attack logits 0
        dec.basic.weight[1, 0] = dec.basic.weight[2, 1] = dec.basic.weight[2, 2] = 1.0
        dec.skill_emb.weight.zero_()
        for k, unit in enumerate([0, 1, 2, 2]):
            dec.skill_emb.weight[k, unit] = 1e4

    class FakeTrainer:  # the attributes the play part reads
        seed, device, source_maps, learner = 0, torch.device("cpu"), ["3m"], None
    FakeTrainer.learner = learner
    out = Diagnostics(value_episodes=0, play_episodes=2)._play(FakeTrainer, "3m", 0)
    hists = out["forced_action_hist"]
    assert hists[0][1] == 1.0  # skill 0: every alive agent-step is 'stop'
    # north until the map edge blocks it, then 'stop' (the first of the tied zero logits)
    assert hists[1][2] > 0.1 and hists[1][1] + hists[1][2] == pytest.approx(1.0)
    assert hists[1] == hists[2] == hists[3]
    assert out["distinct_forced_play"] == 2.0 and out["skills_used"] >= 1.0
    assert learner.controller().fixed_skill is None


def _hygen():
    from test_hygen_learning import small_learner

    return small_learner(maps=["3m"])


def _updet():
    from test_baselines import value_learner

    return value_learner()


def _hissd():
    from test_hissd import small_learner

    return small_learner(maps=["3m"])


@pytest.mark.parametrize("make,loss", [(_hygen, lambda L, b: L._policy_loss(b, 0.5)),
                                       (_updet, lambda L, b: L._loss(b, 0.5)),
                                       (_hissd, lambda L, b: L._map_loss(b))])
def test_value_estimates_are_the_q_tot_the_loss_trains(make, loss):
    """value_estimates gives the Q_tot at the data skills / actions that the TD term fits."""
    learner = make()
    b = random_episodes("3m", 4, lengths=[5, 9, 3, 7], seed=0)
    b.n_offline = 4
    q_tot = learner.value_estimates(b)
    stats = loss(learner, b.trim())[1]
    assert q_tot.shape == (4, 9, 1)
    mask = b.trim().mask
    assert float((q_tot * mask).sum() / mask.sum()) == pytest.approx(float(stats["q_tot_mean"]), rel=1e-5)
