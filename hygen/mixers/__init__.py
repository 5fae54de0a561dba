"""hygen.mixers: mixing networks Q_tot(s, Q_1..Q_n)."""

from hygen.mixers.attention import AttentionMixer
from hygen.mixers.base import ValueMixer
from hygen.mixers.qmix import QMixer
from hygen.mixers.vdn import VDNMixer

__all__ = ["AttentionMixer", "QMixer", "VDNMixer", "ValueMixer"]
