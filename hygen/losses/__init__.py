"""hygen.losses: HyGen's objectives (eqs. 2, 4, 5) and conservative terms (eq. 6)."""

from hygen.losses.conservative import ConservativeLoss, CQLLoss, MixedCQLLoss, NoConservativeLoss, ODISGapLoss
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

__all__ = ["CQLLoss", "ConservativeLoss", "MixedCQLLoss", "NoConservativeLoss", "ODISGapLoss", "alive_agents",
           "consistency_loss", "kl_to_uniform", "lambda_returns", "masked_mean", "td_loss", "vae_loss",
           "weighted_nll", "weighted_nll_at"]
