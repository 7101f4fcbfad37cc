"""The dream as a gymnasium environment: `worldsim/Dream-v0`, registered by `import worldsim`.

    import gymnasium, worldsim
    env = gymnasium.make("worldsim/Dream-v0", model="cartpole")
    frame, info = env.reset(seed=7)                      # the real env's reset frame for seed 7
    frame, reward, terminated, truncated, info = env.step(1)

Its action space is the real environment's; observations are the model's frames, uint8
(h, w, 3). `reset(options={"frames": [...]})` starts from any frames (1..K, any size, oldest
first). Reward and `terminated` come from the model where it predicts them (capability
`outcome`); otherwise the reward is 0 and the dream never ends by itself (pass
`max_episode_steps` to gymnasium.make to cut it). As in DIAMOND's WorldModelEnv, an agent can be
trained or scored inside the dream exactly as in the real environment.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from worldsim.envs.actions import parse_actions
from worldsim.envs.simulator import simulator_frames
from worldsim.models.base import WorldModel


class DreamEnv(gym.Env):
    """A world model driven like the environment it learned."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        model: str | WorldModel = "cartpole",
        render_mode: str | None = "rgb_array",
        device: str = "cpu",
    ):
        from worldsim.rollout import cached_model

        self.model = cached_model(model, device) if isinstance(model, str) else model
        spec = self.model.spec
        self.spec_ = spec
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": spec.fps}
        if spec.action_kind == "discrete":
            self.action_space = gym.spaces.Discrete(spec.num_actions)
        else:
            low, high = np.array(spec.action_low, np.float32), np.array(spec.action_high, np.float32)
            self.action_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.observation_space = gym.spaces.Box(0, 255, (spec.height, spec.width, 3), np.uint8)
        self._state = None
        self._frame: np.ndarray | None = None
        self._ended = False

    @torch.inference_mode()
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        frames = (options or {}).get("frames")
        info: dict[str, Any] = {}
        if frames is None:  # the real environment's reset frame for this seed
            start_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
            frames = simulator_frames(self.spec_, start_seed)[:1]
            info["simulator_seed"] = start_seed
        context = self.model.prepare_context(list(frames) if not isinstance(frames, np.ndarray) else frames)
        self._state = self.model.start(torch.from_numpy(context)[None].to(self.model.device))
        self._frame, self._ended = context[-1], False
        return self._frame, info

    @torch.inference_mode()
    def step(self, action):
        if self._state is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        parsed = parse_actions([action], self.spec_)
        self._state = self.model.step(self._state, torch.as_tensor(parsed, device=self.model.device))
        self._frame = self.model.render(self._state)[0].cpu().numpy()
        reward, terminated = 0.0, False
        if self.model.capabilities.outcome:
            outcome = self.model.outcome(self._state)
            reward, terminated = float(outcome.reward[0]), bool(outcome.terminated[0])
        self._ended = self._ended or terminated
        return self._frame, reward, self._ended, False, {}

    def render(self) -> np.ndarray | None:
        return self._frame
