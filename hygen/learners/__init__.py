"""hygen.learners: one Learner per method (see hygen.trainer.Learner for the contract)."""

from hygen.learners.action_value import ActionValueController, ActionValueLearner  # noqa: F401
from hygen.learners.hissd import HiSSDController, HiSSDLearner  # noqa: F401
from hygen.learners.hygen import HyGenController, HyGenLearner  # noqa: F401  (M's)
from hygen.learners.qmix import QMIXController, QMIXLearner, RNNAgent  # noqa: F401
