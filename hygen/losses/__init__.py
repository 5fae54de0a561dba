"""hygen.losses: HyGen's objectives (eqs. 2, 4, 5), consistency and conservative terms (eqs. 5, 6)
and decoder refinement rules."""

from hygen.losses.conservative import ConservativeLoss, CQLLoss, MixedCQLLoss, NoConservativeLoss, ODISGapLoss
from hygen.losses.consistency import ArgmaxConsistency, ConsistencyLoss, KLConsistency
from hygen.losses.objectives import (
    alive_agents,
    consistency_loss,
    kl_to_uniform,
    lambda_returns,
    masked_mean,
    td_loss,
    vae_loss,
    weighted_nll,
    weighted_nll_at,
)
from hygen.losses.refinement import (
    CloneAllEpisodes,
    CloneByReturn,
    CloneWonEpisodes,
    DecoderRefinement,
    NoRefinement,
)

__all__ = ["ArgmaxConsistency", "CQLLoss", "CloneAllEpisodes", "CloneByReturn", "CloneWonEpisodes",
           "ConservativeLoss", "ConsistencyLoss", "DecoderRefinement", "KLConsistency", "MixedCQLLoss",
           "NoConservativeLoss", "NoRefinement", "ODISGapLoss", "alive_agents", "consistency_loss", "kl_to_uniform",
           "lambda_returns", "masked_mean", "td_loss", "vae_loss", "weighted_nll", "weighted_nll_at"]
