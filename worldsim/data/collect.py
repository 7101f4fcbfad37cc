"""Data: collect episodes from gymnasium into compressed shards, and read them back for training.

A shard is one `.npz` file (no pickles) holding whole episodes, concatenated:

    frames           (N, H, W, 3) uint8   preprocessed frames, as the model sees them
    actions          (N,) int64 | (N, D) float32   action taken after frame t (last one per episode: filler)
    states           (N, S) float32       simulator state vector at frame t (absent if the env has none)
    rewards          (N,) float32         reward of the step into frame t (0 at an episode's start)
    terminals        (N,) bool            the real episode had ended (terminated) by frame t
    episode_lengths  (E,) int64           frames per episode; they sum to N
    episode_seeds    (E,) int64           reset seed of each episode's sub-environment stream
    policies         (E,) str             which collection policy drove each episode
    meta             () str               JSON: the environment spec, worldsim data format version

Shard k of a collection is a pure function of (env, seed, k, envs per shard), so an interrupted
collection resumes by skipping the shards already on disk, and reruns produce the same bytes.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from worldsim.envs.builtin import get_spec
from worldsim.envs.spec import EnvSpec, derive_spec, preprocess, simulator_state

DATA_FORMAT_VERSION = 1
# Training seeds stay below this; evaluation draws its seeds above it, so held-out means held out.
EVAL_SEED_START = 2**30


class RecordFrames(gym.Wrapper):
    """Puts the preprocessed frame and simulator state into `info`, and plays on past termination.

    Running in the vector env's worker process, it spreads rendering and resizing over the cores.
    After `terminated`, it keeps stepping `spec.steps_after_termination` more steps (then truncates),
    because users will drive a model past the point where the simulator would stop.
    """

    def __init__(self, env: gym.Env, spec: EnvSpec):
        super().__init__(env)
        self.spec_ = spec
        self._steps_after_end: int | None = None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._steps_after_end = None
        return obs, self._record(info, obs, reward=0.0)

    def step(self, action):
        with warnings.catch_warnings():  # stepping past termination is intended here
            warnings.simplefilter("ignore")
            obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, "_terminated": terminated}
        if self._steps_after_end is not None:
            self._steps_after_end += 1
            truncated = truncated or self._steps_after_end >= self.spec_.steps_after_termination
            terminated = False
        elif terminated and self.spec_.steps_after_termination > 0:
            self._steps_after_end, terminated = 0, False
        return obs, reward, terminated, truncated, self._record(info, obs, reward)

    def clone_state(self) -> object | None:
        """The emulator's whole state where the env can copy it (ALE), else None."""
        clone = getattr(self.env.unwrapped, "clone_state", None)
        return clone(include_rng=True) if clone else None

    def restore_state(self, state: object) -> None:
        """Back to a `clone_state`, as it was then (not yet past an episode's end)."""
        self.env.unwrapped.restore_state(state)
        self._steps_after_end = None

    def _record(self, info: dict, obs, reward: float) -> dict:
        """The frame and state, the reward of the step that led here, and whether the real
        episode has ended by this frame (it stays ended in the steps played past its end)."""
        info = dict(info)
        info["frame"] = preprocess(self.env.render(), self.spec_)
        info["reward"] = np.float32(reward)
        info["terminal"] = self._steps_after_end is not None or bool(info.pop("_terminated", False))
        state = simulator_state(self.env, self.spec_, obs)
        if state is not None:
            info["state"] = state
        return info


# --- collection policies -------------------------------------------------------------------------


class RandomPolicy:
    """Uniform random actions: short episodes that cover how things fall apart."""

    def __init__(self, spec: EnvSpec, rng: np.random.Generator):
        self.spec, self.rng = spec, rng

    def act(self, obs: np.ndarray):
        if self.spec.action_kind == "discrete":
            return int(self.rng.integers(self.spec.num_actions))
        return self.rng.uniform(self.spec.action_low, self.spec.action_high).astype(np.float32)


class StickyPolicy(RandomPolicy):
    """Random actions held for several steps: long pushes in one direction, as people type them."""

    def __init__(self, spec: EnvSpec, rng: np.random.Generator):
        super().__init__(spec, rng)
        self.keep = rng.uniform(0.7, 0.95)
        self.action = super().act(None)

    def act(self, obs: np.ndarray):
        if self.rng.random() > self.keep:
            self.action = super().act(obs)
        return self.action


class ScriptPolicy(RandomPolicy):
    """Random action scripts as a person types them (`left*4 right*9 noop*2`): a random action
    held for a random 1..10 steps, then another. Evaluation plays it for every env, so models are
    measured on the held keys people use, not only on uniform noise or the env's own policies."""

    MAX_HOLD = 10

    def __init__(self, spec: EnvSpec, rng: np.random.Generator):
        super().__init__(spec, rng)
        self.action, self.left = None, 0

    def act(self, obs: np.ndarray):
        if self.left == 0:
            self.action = super().act(obs)
            self.left = int(self.rng.integers(1, self.MAX_HOLD + 1))
        self.left -= 1
        return self.action


class BalancePolicy(RandomPolicy):
    """CartPole: a noisy PD balancer with per-episode gains, drift target and a 'let go' step.

    Random actions end CartPole in ~15 steps; this one keeps the pole up for hundreds of steps while
    the cart wanders (so all track positions appear), then lets go at a random step so falls from
    moving, off-centre states are seen too.
    """

    def __init__(self, spec: EnvSpec, rng: np.random.Generator):
        super().__init__(spec, rng)
        self.gains = rng.uniform([0.5, 0.5, 8.0, 1.0], [2.0, 2.0, 15.0, 3.0])  # x, x_dot, th, th_dot
        self.target_x = rng.uniform(-1.8, 1.8)
        self.epsilon = rng.uniform(0.05, 0.35)
        self.let_go_at = int(rng.integers(40, 600))
        self.steps = 0

    def act(self, obs: np.ndarray):
        self.steps += 1
        if self.steps > self.let_go_at or self.rng.random() < self.epsilon:
            return super().act(obs)
        x, x_dot, theta, theta_dot = obs
        # Pushing toward the target means tilting the pole toward it first, so x enters with - sign.
        k_x, k_v, k_th, k_w = self.gains
        push = k_th * theta + k_w * theta_dot + 0.05 * (k_x * (x - self.target_x) + k_v * x_dot)
        return int(push > 0)


class DrivePolicy(RandomPolicy):
    """CarRacing: steer toward the road just ahead of the car, seen in the 96x96 observation, with
    a per-episode steering gain, speed and share of random actions. Random actions spin the car on
    the grass; this one drives along the track, wobbling, sometimes off it, as people play."""

    CAR_COLUMN = 48  # the car sits at the centre of the observation, rows 66-77
    LOOKAHEAD_ROW = 60

    def __init__(self, spec: EnvSpec, rng: np.random.Generator):
        super().__init__(spec, rng)
        self.gain = rng.uniform(0.5, 2.0)
        self.gas = rng.uniform(0.05, 0.35)
        self.epsilon = rng.uniform(0.05, 0.3)

    def act(self, obs: np.ndarray):
        if self.rng.random() < self.epsilon:
            return super().act(obs)
        row = obs[self.LOOKAHEAD_ROW].astype(np.int16)
        # Road is grey (about 100-110 in every channel); grass is green.
        road = (np.abs(row[:, 0] - row[:, 1]) < 10) & (row[:, 0] > 80) & (row[:, 0] < 130)
        offset = (np.flatnonzero(road).mean() - self.CAR_COLUMN) / self.CAR_COLUMN if road.any() else 0.0
        steer = np.clip(self.gain * offset + self.rng.normal(0, 0.1), -1, 1)
        return np.array([steer, self.gas, 0.0], dtype=np.float32)


POLICIES = {
    "random": RandomPolicy,
    "sticky": StickyPolicy,
    "script": ScriptPolicy,
    "balance": BalancePolicy,
    "drive": DrivePolicy,
}


# --- collection ----------------------------------------------------------------------------------


@dataclass
class CollectConfig:
    """What `python -m worldsim collect` gathers."""

    env: str = "cartpole"  # built-in environment name (worldsim.envs.builtin)
    # Any gymnasium id that renders rgb_array, instead of --env: its spec is derived from the env
    # itself (worldsim.envs.spec.derive_spec) and stored with the data; out defaults to data/<name>.
    env_id: str = ""
    action_names: str = ""  # with --env-id: names for the discrete actions, comma-separated
    out: str = ""  # folder of shards; default data/<env> (kept out of git)
    episodes: int = 0  # total episodes (with --branch: seeds); 0 takes the spec's collect_episodes
    shard_episodes: int = 25  # episodes (with --branch: seeds) per shard file: the unit of resumption
    num_envs: int = 2  # sub-environments in the async vector env (one per core)
    seed: int = 0  # with num_envs, fixes every shard's content
    source: str = ""  # hf://datasets/owner/name: fetch its episodes into shards instead of simulating
    # Which policies play the episodes, "name:weight,..." (default: the spec's collect_policies),
    # e.g. "random:0.5,balance:0.5" for a CartPole with more falls from rest.
    policies: str = ""
    # Steps per episode at most (default: the spec's episode_steps; 0: until the game ends). Short
    # episodes gather many openings: every Pong game starts with the same serve, which random keys
    # return about one time in seven, and a return's angle hangs on a pixel of the paddle.
    episode_steps: int = -1
    # Many futures of the same moments, "PREFIX BRANCHES STEPS" (e.g. "52 50 12"): each of
    # `episodes` seeds plays PREFIX steps of its policy, then BRANCHES continuations of STEPS steps
    # from that one state, each saved as an episode that starts BRANCH_CONTEXT frames before the
    # branch point. Pong's first serve is the same in every game and whether random keys return it
    # hangs on a pixel of the paddle: 10,000 of its futures cost what 200 games' openings do.
    branch: str = ""

    def __post_init__(self):
        if self.action_names and not self.env_id:
            raise ValueError("--action-names renames a derived environment's actions: use it with --env-id.")
        self.policy_weights()  # refused now, not after the environment started
        self.branch_plan()

    def branch_plan(self) -> tuple[int, int, int] | None:
        """`branch` parsed into (prefix, branches, steps); None where it is empty."""
        if not self.branch.strip():
            return None
        try:
            prefix, branches, steps = (int(p) for p in self.branch.split())
        except ValueError:
            prefix = branches = steps = -1
        if prefix < 0 or branches < 1 or steps < 1:
            raise ValueError(
                f"--branch takes three whole numbers, 'PREFIX BRANCHES STEPS' (e.g. '52 50 12': 52 "
                f"steps, then 50 continuations of 12 steps each); got {self.branch!r}."
            )
        if self.source:
            raise ValueError("--branch collects from the simulator; --source fetches episodes: give one.")
        return prefix, branches, steps

    def policy_weights(self) -> tuple[tuple[str, float], ...] | None:
        """`policies` parsed into (name, weight) pairs; None where it is empty."""
        if not self.policies.strip():
            return None
        pairs = []
        for item in self.policies.split(","):
            name, _, weight = item.strip().partition(":")
            try:
                value = float(weight or 1)
            except ValueError:
                value = -1.0
            if name not in POLICIES or value <= 0:
                raise ValueError(
                    f"--policies takes name:weight pairs, comma-separated, with a positive weight and "
                    f"a name among {', '.join(POLICIES)}; got {item.strip()!r}."
                )
            pairs.append((name, value))
        return tuple(pairs)

    def spec(self) -> EnvSpec:
        """The environment: derived from the gymnasium id, or the built-in one, with `policies`."""
        spec = self._env_spec()
        weights = self.policy_weights()
        if weights is not None:
            spec = replace(spec, collect_policies=weights)
        return spec if self.episode_steps < 0 else replace(spec, episode_steps=self.episode_steps)

    def _env_spec(self) -> EnvSpec:
        if not self.env_id:
            return get_spec(self.env)
        names = tuple(n.strip() for n in self.action_names.split(",") if n.strip())
        spec = derive_spec(self.env_id)
        if names:
            if len(names) != spec.num_actions or spec.action_kind != "discrete":
                raise ValueError(
                    f"--action-names gives {len(names)} names; {self.env_id} has "
                    f"{spec.num_actions} {spec.action_kind} actions."
                )
            keys = {role: names[spec.action_names.index(a)] for role, a in spec.play_keys.items()}
            examples = " ".join(f"{n}*10" for n in (names[1:4] if len(names) > 3 else names))
            spec = replace(spec, action_names=names, play_keys=keys, example_actions=examples)
        return spec


def shard_path(out: str | Path, index: int) -> Path:
    return Path(out) / f"shard_{index:05d}.npz"


def collect(config: CollectConfig) -> list[Path]:
    """Collect `config.episodes` episodes into shards, skipping shards already written."""
    spec = config.spec()
    # branches are not the env's episodes: by default they go beside them, not among them
    out = Path(config.out or f"data/{spec.name}" + ("_branches" if config.branch_plan() else ""))
    episodes = config.episodes or spec.collect_episodes
    config = replace(config, out=str(out), episodes=episodes)
    out.mkdir(parents=True, exist_ok=True)
    num_shards = -(-config.episodes // config.shard_episodes)
    paths = [shard_path(out, k) for k in range(num_shards)]
    todo = [k for k, path in enumerate(paths) if not path.exists()]
    if len(todo) < num_shards:
        print(f"resuming: {num_shards - len(todo)} of {num_shards} shards already in {out}")
    plan = config.branch_plan()
    unit = "ep" if plan is None else "seed"
    progress = tqdm(total=len(todo) * config.shard_episodes, desc=f"collect {spec.name}", unit=unit)
    for k in todo:
        count = min(config.shard_episodes, config.episodes - k * config.shard_episodes)
        if plan is None:
            episodes = collect_episodes(
                spec, count, config.num_envs, seed=(config.seed, k), progress=progress
            )
        else:
            episodes = collect_branches(spec, count, *plan, seed=(config.seed, k), progress=progress)
        write_shard(paths[k], spec, episodes)
    progress.close()
    return paths


def collect_episodes(
    spec: EnvSpec,
    count: int,
    num_envs: int,
    seed: tuple[int, ...] | int,
    progress: tqdm | None = None,
    env_seeds: list[int] | None = None,
) -> list[dict]:
    """Run `count` whole episodes on an async vector env; deterministic given seed and num_envs.

    Each episode is a dict of frames (L+1, H, W, 3), actions (L, ...), states (L+1, S) or None,
    seed and policy name. `env_seeds` overrides the per-sub-env reset seeds (evaluation uses this).
    """
    seq = np.random.SeedSequence(seed)
    if env_seeds is None:
        env_seeds = [int(s) % EVAL_SEED_START for s in seq.generate_state(num_envs)]
    rng = np.random.default_rng(seq)

    def new_episode(env_index: int, info: dict) -> dict:
        name = draw_policy(spec, rng)
        return {
            "frames": [info["frame"][env_index]],
            "rewards": [np.float32(0)],
            "terminals": [False],
            "states": [info["state"][env_index]] if "state" in info else None,
            "actions": [],
            "seed": env_seeds[env_index],
            "policy": name,
            "actor": POLICIES[name](spec, rng),
        }

    envs = gym.vector.AsyncVectorEnv(
        [partial(_make_recording_env, spec)] * num_envs,
        autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
        context="spawn",
    )
    episodes: list[dict] = []
    try:
        obs, info = envs.reset(seed=env_seeds)
        running = [new_episode(i, info) for i in range(num_envs)]
        ended = np.zeros(num_envs, dtype=bool)
        while len(episodes) < count:
            actions = [episode["actor"].act(obs[i]) for i, episode in enumerate(running)]
            obs, _, terminated, truncated, info = envs.step(np.stack(actions))
            for i in range(num_envs):
                if ended[i]:  # this step was the sub-env's automatic reset
                    running[i] = new_episode(i, info)
                    continue
                episode = running[i]
                episode["actions"].append(actions[i])
                episode["frames"].append(info["frame"][i])
                episode["rewards"].append(info["reward"][i])
                episode["terminals"].append(bool(info["terminal"][i]))
                if episode["states"] is not None:
                    episode["states"].append(info["state"][i])
                if (terminated[i] or truncated[i]) and len(episodes) < count:
                    episodes.append(_finish(episode))
                    if progress is not None:
                        progress.update(1)
            ended = terminated | truncated
    finally:
        envs.close()
    return episodes


# A branch's episode starts this many frames before the branch point: a memory's key needs the
# motion into a step, a row table the last four keys.
BRANCH_CONTEXT = 4


def collect_branches(
    spec: EnvSpec,
    count: int,
    prefix: int,
    branches: int,
    steps: int,
    seed: tuple[int, ...] | int,
    progress: tqdm | None = None,
) -> list[dict]:
    """`count` seeds, each played `prefix` steps by its policy and then continued `branches` times
    for `steps` steps from that same state (see CollectConfig.branch): count * branches episodes,
    each from BRANCH_CONTEXT frames before the branch point (fewer where the prefix is shorter).
    Deterministic given seed. An env that can copy its state (ALE's clone_state) is set back to
    it; any other is reset with the same seed and replays the prefix's actions."""
    seq = np.random.SeedSequence(seed)
    env_seeds = [int(s) % EVAL_SEED_START for s in seq.generate_state(count)]
    rng = np.random.default_rng(seq)
    env = _make_recording_env(spec)
    keep = min(BRANCH_CONTEXT, prefix)
    episodes: list[dict] = []
    try:
        for env_seed in env_seeds:
            name = draw_policy(spec, rng)
            actor = POLICIES[name](spec, rng)
            obs, info = env.reset(seed=env_seed)
            played, ended = [_recorded(info, None)], False
            for _ in range(prefix):
                action = actor.act(obs)
                obs, _, terminated, truncated, info = env.step(action)
                played.append(_recorded(info, action))
                ended = terminated or truncated or info["terminal"]  # (or played on past its end)
                if ended:
                    break
            if ended:  # the game was over before the branch point: no futures to branch into
                if progress is not None:
                    progress.update(1)
                continue
            state, branch_obs = env.clone_state(), obs
            for branch in range(branches):
                if branch and state is not None:
                    env.restore_state(state)
                    obs = branch_obs
                elif branch:  # no state to copy: the same seed and actions lead to the same state
                    obs, info = env.reset(seed=env_seed)
                    for step in played[1:]:
                        obs, *_, info = env.step(step["action"])
                    if not np.array_equal(info["frame"], played[-1]["frame"]):
                        raise ValueError(
                            f"--branch: {spec.name} played the same seed and actions to another frame; "
                            "it needs an env that is deterministic given them, or one that copies its state."
                        )
                # each future from the policy as it was at the branch point, drawing from one rng
                branch_actor = copy.deepcopy(actor)
                branch_actor.rng = rng
                steps_taken = [*played[len(played) - 1 - keep :]]
                for _ in range(steps):
                    action = branch_actor.act(obs)
                    obs, _, terminated, truncated, info = env.step(action)
                    steps_taken.append(_recorded(info, action))
                    if terminated or truncated:
                        break
                episodes.append(_branch_episode(steps_taken, env_seed, name))
            if progress is not None:
                progress.update(1)
    finally:
        env.close()
    return episodes


def _recorded(info: dict, action) -> dict:
    """One frame of a branch's record: what RecordFrames put in `info`, and the action into it."""
    return {"action": action, **{k: info.get(k) for k in ("frame", "reward", "terminal", "state")}}


def _branch_episode(frames: list[dict], seed: int, policy: str) -> dict:
    first = frames[0]
    return _finish(
        {
            "frames": [f["frame"] for f in frames],
            "actions": [f["action"] for f in frames[1:]],
            "rewards": [np.float32(0), *(f["reward"] for f in frames[1:])],
            "terminals": [False, *(bool(f["terminal"]) for f in frames[1:])],  # no prefix had ended
            "states": None if first["state"] is None else [f["state"] for f in frames],
            "seed": seed,
            "policy": policy,
        }
    )


def draw_policy(spec: EnvSpec, rng: np.random.Generator) -> str:
    """The name of the collection policy that plays the next episode, drawn by its weight."""
    names = [name for name, _ in spec.collect_policies]
    weights = np.array([w for _, w in spec.collect_policies], dtype=float)
    return names[rng.choice(len(names), p=weights / weights.sum())]


def _make_recording_env(spec: EnvSpec) -> RecordFrames:
    limit = {"max_episode_steps": spec.episode_steps} if spec.episode_steps else {}
    return RecordFrames(spec.make(disable_env_checker=True, **limit), spec)


def _finish(episode: dict) -> dict:
    return {
        "frames": np.stack(episode["frames"]),
        "actions": np.stack(episode["actions"]),
        "rewards": np.array(episode["rewards"], dtype=np.float32),
        "terminals": np.array(episode["terminals"], dtype=bool),
        "states": None if episode["states"] is None else np.stack(episode["states"]),
        "seed": episode["seed"],
        "policy": episode["policy"],
    }


def write_shard(path: Path, spec: EnvSpec, episodes: list[dict]) -> None:
    """Write episodes to one compressed shard, atomically (temp file, then rename)."""
    actions = []
    for episode in episodes:  # pad each episode's actions to one per frame (last = filler)
        filler = np.zeros_like(episode["actions"][:1])
        actions.append(np.concatenate([episode["actions"], filler]))
    arrays = {
        "frames": np.concatenate([e["frames"] for e in episodes]),
        "actions": np.concatenate(actions).astype(np.int64 if spec.action_kind == "discrete" else np.float32),
        "episode_lengths": np.array([len(e["frames"]) for e in episodes], dtype=np.int64),
        "episode_seeds": np.array([e["seed"] for e in episodes], dtype=np.int64),
        "policies": np.array([e["policy"] for e in episodes], dtype=str),
        "meta": np.array(json.dumps(_meta(spec))),
    }
    if episodes[0]["states"] is not None:
        arrays["states"] = np.concatenate([e["states"] for e in episodes]).astype(np.float32)
    if episodes[0].get("rewards") is not None:  # data imported from before they were recorded: none
        # rewards[t]: the reward of the step into frame t; terminals[t]: the real episode had
        # ended (terminated) by frame t. Both 0/False at an episode's first frame.
        arrays["rewards"] = np.concatenate([e["rewards"] for e in episodes]).astype(np.float32)
        arrays["terminals"] = np.concatenate([e["terminals"] for e in episodes]).astype(bool)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _meta(spec: EnvSpec) -> dict:
    return {
        "format_version": DATA_FORMAT_VERSION,
        "env": spec.name,
        "gym_id": spec.gym_id,
        "height": spec.height,
        "width": spec.width,
        "spec": spec.to_dict(),  # what the data was collected as: train reads the env from here
    }


def read_spec(folder: str | Path) -> EnvSpec | None:
    """The spec a collection was made with (from its first shard), or None for older data."""
    paths = sorted(p for p in Path(folder).glob("shard_*.npz") if not p.name.endswith(".tmp.npz"))
    if not paths:
        return None
    with np.load(paths[0], allow_pickle=False) as shard:
        meta = json.loads(str(shard["meta"]))
    return EnvSpec.from_dict(meta["spec"]) if "spec" in meta else None


# --- reading -------------------------------------------------------------------------------------


@dataclass
class EpisodeData:
    """All episodes of a collection, concatenated in memory."""

    frames: np.ndarray  # (N, H, W, 3) uint8
    actions: np.ndarray  # (N,) int64 | (N, D) float32
    states: np.ndarray | None  # (N, S) float32
    rewards: np.ndarray | None  # (N,) float32, reward of the step into frame t (older data: None)
    terminals: np.ndarray | None  # (N,) bool, the real episode had ended by frame t
    episode_starts: np.ndarray  # (E,) index of each episode's first frame
    episode_lengths: np.ndarray  # (E,)
    policies: np.ndarray  # (E,) str

    @property
    def num_episodes(self) -> int:
        return len(self.episode_lengths)

    def window_starts(self, length: int, episodes: np.ndarray | None = None) -> np.ndarray:
        """Start indices of every window of `length` frames that stays inside one episode."""
        chosen = np.arange(self.num_episodes) if episodes is None else episodes
        starts = [
            np.arange(self.episode_starts[e], self.episode_starts[e] + self.episode_lengths[e] - length + 1)
            for e in chosen
        ]
        return np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)


def load_episodes(folder: str | Path, spec: EnvSpec) -> EpisodeData:
    """Read every shard in `folder`, checking each was collected for `spec` at its resolution."""
    paths = sorted(Path(folder).glob("shard_*.npz"))
    paths = [p for p in paths if not p.name.endswith(".tmp.npz")]
    if not paths:
        raise FileNotFoundError(
            f"No shards in {folder}. Collect some first: python -m worldsim collect --env {spec.name}"
        )
    parts = []
    for path in tqdm(paths, desc="load shards", unit="shard", leave=False):
        with np.load(path, allow_pickle=False) as shard:
            meta = json.loads(str(shard["meta"]))
            if (meta["env"], meta["height"], meta["width"]) != (spec.name, spec.height, spec.width):
                raise ValueError(f"{path} holds {meta}, not {spec.name} at {spec.height}x{spec.width}.")
            parts.append({key: shard[key] for key in shard.files if key != "meta"})
    lengths = np.concatenate([p["episode_lengths"] for p in parts])
    return EpisodeData(
        frames=np.concatenate([p["frames"] for p in parts]),
        actions=np.concatenate([p["actions"] for p in parts]),
        states=np.concatenate([p["states"] for p in parts]) if "states" in parts[0] else None,
        rewards=np.concatenate([p["rewards"] for p in parts]) if "rewards" in parts[0] else None,
        terminals=np.concatenate([p["terminals"] for p in parts]) if "terminals" in parts[0] else None,
        episode_starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        episode_lengths=lengths,
        policies=np.concatenate([p["policies"] for p in parts]),
    )
