"""worldsim: learned world models of gymnasium environments, rolled out in the browser.

    import worldsim
    model = worldsim.load("cartpole")                       # a name, a folder or hf://owner/name
    video = model.rollout(start_frame, "right*5 left*5")    # (T+1, h, w, 3) uint8

    import gymnasium
    env = gymnasium.make("worldsim/Dream-v0", model="cartpole")   # the dream, driven like an env

Every model keeps one contract, `worldsim.WorldModel` (docs/contract.md).
"""

from worldsim.envs.actions import ActionError, format_actions, parse_actions
from worldsim.envs.builtin import ENV_SPECS, get_spec
from worldsim.envs.spec import EnvSpec, derive_spec, preprocess
from worldsim.models.base import Capabilities, Outcome, PretrainedWorldModel, WorldModel
from worldsim.models.checkpoint import CheckpointError
from worldsim.models.registry import known_kinds, load

__all__ = [
    "ENV_SPECS",
    "ActionError",
    "App",
    "Capabilities",
    "CheckpointError",
    "EnvSpec",
    "Outcome",
    "PretrainedWorldModel",
    "WorldModel",
    "derive_spec",
    "format_actions",
    "get_spec",
    "known_kinds",
    "load",
    "parse_actions",
    "preprocess",
]
__version__ = "0.2.0"


def __getattr__(name: str):
    if name == "App":  # gradio is imported only by those who build an app
        from worldsim.app.builder import App

        return App
    raise AttributeError(f"module 'worldsim' has no attribute {name!r}")


def _register_dream_env() -> None:
    import gymnasium

    if "worldsim/Dream-v0" not in gymnasium.registry:
        gymnasium.register(id="worldsim/Dream-v0", entry_point="worldsim.envs.dream:DreamEnv")


_register_dream_env()
