"""hygen.learners: one Learner per method (see hygen.trainer.Learner for the contract)."""

from hygen.learners.hygen import HyGenController, HyGenLearner  # noqa: F401  (M's)
from hygen.learners.qmix import QMIXController, QMIXLearner, RNNAgent  # noqa: F401
