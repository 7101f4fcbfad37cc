"""World models: the contract every kind keeps (base), kinds by name and `load` (registry), the
built-in kind (latent), checkpoint folders (checkpoint) and their cards (card)."""

from worldsim.models.base import Capabilities, Outcome, PretrainedWorldModel, WorldModel
from worldsim.models.registry import known_kinds, load, model_class

__all__ = [
    "Capabilities",
    "Outcome",
    "PretrainedWorldModel",
    "WorldModel",
    "known_kinds",
    "load",
    "model_class",
]
