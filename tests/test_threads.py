"""Thread policies: AdaptiveThreads follows other processes' load (a fake /proc/stat), a fixed count wins."""

from __future__ import annotations

import os

import pytest
import torch

from hygen import threads
from hygen.threads import AdaptiveThreads, FixedThreads

HZ = os.sysconf("SC_CLK_TCK")


class FakeMachine:
    """A 2-core machine: /proc/stat's first line, a clock and this process's CPU time, advanced by hand."""

    def __init__(self, path):
        self.path, self.t, self.busy, self.idle, self.own = path, 0.0, 0.0, 0.0, 0.0
        self.write()

    def write(self):
        # user nice system idle iowait irq softirq steal, in jiffies: the machine, then each core (the
        # fake's work sits on cores 0-1; core 2, outside the policy's mask, is always fully busy)
        b, i = round(self.busy * HZ / 2), round(self.idle * HZ / 2)
        other = round(self.t * HZ)
        self.path.write_text(f"cpu  {2 * b + other} 0 0 {2 * i} 0 0 0 0\n"
                             f"cpu0 {b} 0 0 {i} 0 0 0 0\ncpu1 {b} 0 0 {i} 0 0 0 0\ncpu2 {other} 0 0 0 0 0 0 0\n")

    def run(self, seconds: float, own_cores: float, other_cores: float, cores: int = 2):
        """``seconds`` pass with this process on ``own_cores`` and other processes on ``other_cores``."""
        self.t += seconds
        used = min(cores, own_cores + other_cores)
        self.busy += used * seconds
        self.idle += (cores - used) * seconds
        self.own += own_cores * seconds
        self.write()


@pytest.fixture
def machine(tmp_path):
    return FakeMachine(tmp_path / "stat")


@pytest.fixture(autouse=True)
def restore_threads():
    n, policy = torch.get_num_threads(), threads._POLICY
    yield
    torch.set_num_threads(n)
    threads._POLICY = policy


def adaptive(machine, **kw) -> AdaptiveThreads:
    p = AdaptiveThreads(stat_path=str(machine.path), clock=lambda: machine.t, own_cpu=lambda: machine.own, **kw)
    p.cpus, p.cores, p.max_threads = {0, 1}, 2, 2  # the fake machine's, whatever this one has
    p.start()
    return p


def test_idle_machine_goes_to_two_threads_after_two_calm_readings(machine):
    p = adaptive(machine)
    assert p.threads == torch.get_num_threads() == 1
    machine.run(3.0, own_cores=1.0, other_cores=0.02)
    assert p.tick() == 1  # one calm reading is not enough (hysteresis)
    machine.run(3.0, own_cores=1.0, other_cores=0.0)
    assert p.tick() == 2 and torch.get_num_threads() == 2 and p.changes == 1


def test_a_busy_other_core_keeps_one_thread(machine):
    p = adaptive(machine)
    for _ in range(5):
        machine.run(3.0, own_cores=1.0, other_cores=1.0)
        assert p.tick() == 1
    assert p.others == pytest.approx(1.0, abs=0.02) and p.changes == 0


def test_a_process_that_appears_takes_the_second_thread_back_at_once(machine):
    p = adaptive(machine)
    for _ in range(2):
        machine.run(3.0, own_cores=1.0, other_cores=0.0)
        p.tick()
    assert p.threads == 2
    # our two threads spin on both cores; the newcomer gets what is left (~0.7 of a core)
    machine.run(3.0, own_cores=1.3, other_cores=0.7)
    assert p.tick() == 1 and torch.get_num_threads() == 1


def test_load_inside_the_hysteresis_band_changes_nothing(machine):
    p = adaptive(machine)
    for _ in range(4):  # 0.4 of a core elsewhere: too much to go up (0.25), too little to come down (0.5)
        machine.run(3.0, own_cores=1.0, other_cores=0.4)
        assert p.tick() == 1
    p.threads = 2
    torch.set_num_threads(2)
    machine.run(3.0, own_cores=1.6, other_cores=0.4)
    assert p.tick() == 2


def test_readings_wait_for_the_interval(machine):
    p = adaptive(machine, interval_s=3.0)
    reads = []
    real_read = p._read
    p._read = lambda: reads.append(1) or real_read()
    machine.run(1.0, own_cores=1.0, other_cores=0.0)
    p.tick()
    assert reads == []  # between readings a tick reads the clock only
    machine.run(2.5, own_cores=1.0, other_cores=0.0)
    p.tick()
    assert reads == [1]


def test_without_proc_stat_auto_stays_at_one_thread(tmp_path):
    p = AdaptiveThreads(stat_path=str(tmp_path / "missing"))
    p.cores = p.max_threads = 2
    assert p.start() == 1
    p.clock = lambda: 1e9
    assert p.tick() == 1


def test_max_threads_caps_the_count(machine):
    p = adaptive(machine)
    p.max_threads = 1
    for _ in range(4):
        machine.run(3.0, own_cores=1.0, other_cores=0.0)
        assert p.tick() == 1


def test_bad_bindings_say_which(machine):
    with pytest.raises(ValueError, match="AdaptiveThreads.interval_s must be a positive number"):
        AdaptiveThreads(interval_s=0)
    with pytest.raises(ValueError, match="AdaptiveThreads.max_threads must be a positive integer"):
        AdaptiveThreads(max_threads=0)
    with pytest.raises(ValueError, match="up_margin < down_margin"):
        AdaptiveThreads(up_margin=0.5, down_margin=0.5)
    with pytest.raises(ValueError, match="positive integer or 'auto', got 'fast'"):
        threads.policy_for("fast")
    with pytest.raises(ValueError, match="positive integer or 'auto', got 0"):
        threads.policy_for(0)


def test_policy_from_a_spec():
    assert isinstance(threads.policy_for("auto"), AdaptiveThreads)
    assert isinstance(threads.policy_for(" AUTO "), AdaptiveThreads)
    p = threads.policy_for("3")
    assert isinstance(p, FixedThreads) and p.threads == 3
    fixed = FixedThreads(2)
    assert threads.policy_for(fixed) is fixed


def test_a_fixed_count_never_moves():
    p = threads.install(1)
    assert torch.get_num_threads() == 1
    assert threads.tick() == 1 and p.tick() == 1 and not p.adaptive


def test_commands_default_to_one_fixed_thread_and_threads_auto_adapts(monkeypatch):
    """A command with no --threads runs one fixed thread (repeatable bits), --threads auto the
    adaptive policy; afterwards the process has its own settings back (a later Trainer in it keeps
    repeatable bits). The demo alone defaults to auto."""
    import hygen.commands.evaluate as ev
    from hygen.cli import main

    seen = []
    monkeypatch.setattr(ev, "run", lambda args: seen.append((threads.current(), torch.get_num_threads())) or 0)
    before = (threads.current(), torch.get_num_threads())
    assert main(["evaluate", "some_run"]) == 0
    assert (threads.current(), torch.get_num_threads()) == before
    assert main(["evaluate", "some_run", "--threads", "auto"]) == 0
    assert (threads.current(), torch.get_num_threads()) == before
    assert isinstance(seen[0][0], FixedThreads) and seen[0][0].threads == 1 and seen[0][1] == 1
    assert isinstance(seen[1][0], AdaptiveThreads) and seen[1][1] == 1  # auto starts at one thread
    from hygen.cli import build_parser

    assert build_parser().parse_args(["demo"]).threads == "auto"
    assert build_parser().parse_args(["train", "--run_dir", "x"]).threads is None


def test_cli_threads_override_the_default(monkeypatch):
    """--threads N installs a fixed policy whatever the default is; --threads auto the adaptive one."""
    import hygen.utils
    from hygen.cli import build_parser

    monkeypatch.setattr(hygen.utils, "DEFAULT_THREADS", "auto")
    args = build_parser().parse_args(["train", "--threads", "1", "--run_dir", "x"])
    hygen.utils.set_threads(args.threads)
    assert isinstance(threads.current(), FixedThreads) and torch.get_num_threads() == 1
    args = build_parser().parse_args(["demo", "--threads", "auto"])
    hygen.utils.set_threads(args.threads)
    assert isinstance(threads.current(), AdaptiveThreads)
    hygen.utils.set_threads(None)  # nothing given: the default
    assert isinstance(threads.current(), AdaptiveThreads)


def test_threads_flag_rejects_nonsense(capsys):
    from hygen.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--threads", "many", "--run_dir", "x"])
    assert e.value.code == 2
    assert "--threads: expected a positive whole number or 'auto', got 'many'" in capsys.readouterr().err


def test_trainer_takes_auto_or_a_bound_policy_class(tmp_path):
    """Trainer.num_threads: 'auto', or a gin-bound policy (@AdaptiveThreads()); bad values name the binding."""
    from hygen.learners.qmix import QMIXLearner
    from hygen.rundir import RunDir
    from hygen.trainer import Phase, Trainer, TrainerError

    def trainer(**kw):
        return Trainer(run_dir=RunDir(tmp_path / "run"), learner=QMIXLearner, source_maps=["3m"],
                       phases=[Phase("online", 2)], num_envs=2, batch_size=2, eval_episodes=1, **kw)

    trainer(num_threads="auto")
    assert isinstance(threads.current(), AdaptiveThreads) and torch.get_num_threads() == 1
    import gin

    gin.parse_config(["AdaptiveThreads.interval_s = 7.5", "Trainer.num_threads = @AdaptiveThreads()"])

    t = Trainer(run_dir=RunDir(tmp_path / "run"), learner=QMIXLearner, source_maps=["3m"],
                phases=[Phase("online", 2)], num_envs=2, batch_size=2, eval_episodes=1)
    assert threads.current().interval_s == 7.5 and t is not None
    gin.clear_config()
    with pytest.raises(TrainerError, match="Trainer.num_threads: threads must be a positive integer or 'auto', got 'x'"):
        trainer(num_threads="x")
    trainer(num_threads=1)
    assert isinstance(threads.current(), FixedThreads)


def test_omp_num_threads_caps_auto(monkeypatch, machine):
    """hygen sweep runs its cells with OMP_NUM_THREADS=1: 'auto' there stays at one thread."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    p = AdaptiveThreads(stat_path=str(machine.path), clock=lambda: machine.t, own_cpu=lambda: machine.own)
    assert p.max_threads == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert AdaptiveThreads().max_threads == threads.cpu_count()
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert AdaptiveThreads().max_threads == threads.cpu_count()


def test_only_the_cores_of_the_affinity_mask_count(machine):
    """Core 2 of the fake machine is always busy, but this process may not run there: no competition."""
    p = adaptive(machine)
    for _ in range(2):
        machine.run(3.0, own_cores=1.0, other_cores=0.0)
        p.tick()
    assert p.threads == 2 and p.others == pytest.approx(0.0, abs=0.02)
    q = adaptive(machine)
    q.cpus = None  # no mask known: the whole machine's line, where core 2 looks like a competitor
    for _ in range(3):
        machine.run(3.0, own_cores=1.0, other_cores=0.0)
        q.tick()
    assert q.threads == 1 and q.others == pytest.approx(1.0, abs=0.02)


def test_the_trainer_lets_the_policy_remeasure_every_update(tmp_path):
    """Trainer.run ticks the installed policy after each update (an adaptive one would re-measure)."""
    from hygen.learners.qmix import QMIXLearner
    from hygen.rundir import RunDir
    from hygen.trainer import Phase, Trainer

    class Counting(FixedThreads):
        ticks = 0

        def tick(self) -> int:
            Counting.ticks += 1
            return super().tick()

    t = Trainer(run_dir=RunDir(tmp_path / "run"), learner=QMIXLearner, source_maps=["3m"],
                phases=[Phase("online", 3)], num_envs=2, batch_size=2, eval_episodes=1, learning_starts=2,
                num_threads=Counting(1))
    t.run()
    assert t.step == 3 and Counting.ticks == 3
