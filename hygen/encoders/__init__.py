"""hygen.encoders: HyGen's skill encoder, local observation encoder and action decoder."""

from hygen.encoders.base import ActionDecoder, ObservationEncoder, TrajectoryEncoder
from hygen.encoders.decoder import AttentionActionDecoder, masked_log_softmax
from hygen.encoders.observation import AttentionObservationEncoder
from hygen.encoders.trajectory import AttentionTrajectoryEncoder

__all__ = ["ActionDecoder", "AttentionActionDecoder", "AttentionObservationEncoder",
           "AttentionTrajectoryEncoder", "ObservationEncoder", "TrajectoryEncoder", "masked_log_softmax"]
