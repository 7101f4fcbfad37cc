"""worldsim: learned world models of gymnasium environments, rolled out in the browser.

import worldsim
model = worldsim.load("cartpole")
video = model.rollout(start_frame, "right*5 left*5")   # (T+1, H, W, 3) uint8
"""

from worldsim.envs.actions import ActionError, format_actions, parse_actions
from worldsim.envs.spec import ENV_SPECS, get_spec, preprocess
from worldsim.models.checkpoint import CheckpointError, load

__all__ = [
    "ENV_SPECS",
    "ActionError",
    "CheckpointError",
    "format_actions",
    "get_spec",
    "load",
    "parse_actions",
    "preprocess",
]
__version__ = "0.1.0"
