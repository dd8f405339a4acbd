"""``reparam compare``: studies that measure gradient estimators against each other.

- :func:`run_survey`: the test problems of Mohamed et al. (2020), exact variances by
  quadrature next to Monte Carlo figures.
- :func:`run_vae_study`: encoder-gradient variance and training curves of a VAE trained
  with each estimator.

``python -m reparam.compare.cli --out DIR`` (or ``reparam compare``) runs both.
"""

from .survey import SurveyConfig, run_survey
from .vae_study import VAEStudyConfig, run_vae_study

__all__ = ["SurveyConfig", "run_survey", "VAEStudyConfig", "run_vae_study"]
