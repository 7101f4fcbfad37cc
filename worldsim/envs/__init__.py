"""Environments: specs as data (spec), the built-in ones (builtin), the real simulator stepped
like a world model (simulator), the dream as a gymnasium environment (dream)."""

from worldsim.envs.builtin import ENV_SPECS, get_spec
from worldsim.envs.spec import Crop, EnvSpec, StateFeatures, derive_spec, preprocess

__all__ = ["ENV_SPECS", "Crop", "EnvSpec", "StateFeatures", "derive_spec", "get_spec", "preprocess"]
