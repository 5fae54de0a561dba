"""hygen.learners: one Learner per method (see hygen.trainer.Learner for the contract)."""

from hygen.learners.action_value import ActionValueController, ActionValueLearner
from hygen.learners.hissd import HiSSDController, HiSSDLearner
from hygen.learners.hygen import HyGenController, HyGenLearner
from hygen.learners.qmix import QMIXController, QMIXLearner, RNNAgent

__all__ = ["ActionValueController", "ActionValueLearner", "HiSSDController", "HiSSDLearner",
           "HyGenController", "HyGenLearner", "QMIXController", "QMIXLearner", "RNNAgent"]
