"""hygen.mixers: mixing networks Q_tot(s, Q_1..Q_n)."""

from hygen.mixers.attention import AttentionMixer, ValueMixer  # noqa: F401  (M's)
from hygen.mixers.qmix import QMixer  # noqa: F401
from hygen.mixers.vdn import VDNMixer  # noqa: F401  (M's)
