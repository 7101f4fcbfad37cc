"""Model cards: the README.md of a checkpoint, generated from its config, training and metrics."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from worldsim.envs.builtin import ENV_SPECS
from worldsim.envs.spec import EnvSpec


def read_card_inputs(folder: str | Path) -> tuple[dict, dict | None, dict | None]:
    """A checkpoint folder's config, training record and metrics (the last two may be absent)."""
    folder = Path(folder)

    def optional(name: str) -> dict | None:
        path = folder / name
        return json.loads(path.read_text()) if path.exists() else None

    return (
        json.loads((folder / "config.json").read_text()),
        optional("training.json"),
        optional("metrics.json"),
    )


def render_model_card(config: dict, training: dict | None, metrics: dict | None) -> str:
    """Markdown with Hugging Face front matter: what the model is, how it was made, how it scores."""
    spec = EnvSpec.from_dict(config["env"])
    size = f"{spec.height}x{spec.width}"
    lines = [
        "---",
        "library_name: worldsim",
        "tags:",
        "- world-model",
        f"- {spec.gym_id}",
        "---",
        "",
        f"# worldsim {spec.name}: a learned world model of {spec.gym_id}",
        "",
        f"Given a start frame and a sequence of actions ({_actions(spec)}), it imagines the next "
        f"{size} frames, one per environment step, at {spec.fps:g} frames/s.",
        "",
        "## Model",
        "",
        _describe_kind(config),
        f"- Takes 1 to {config.get('context_frames', 1)} start frames; frames are cropped "
        f"({_crop(spec)}) and resized to {size}.",
    ]
    if config.get("past_actions"):
        lines.append(
            f"- Also takes the last {config['past_actions']} actions played into the start frame where "
            "they are known (a simulator start, evaluation); from an upload it starts without them."
        )
    if training:
        # The stages run, in the order they ran: the record's parts that took minutes.
        stages = [s for s, part in training.items() if isinstance(part, dict) and "minutes" in part]
        reads_frame = training.get("config", {}).get("outcome_input") == "frame"
        commands = training.get("commands", [training["command"]])
        lines += [
            "",
            "## Training",
            "",
            "```bash",
            f"python -m worldsim collect {_env_flag(spec)}{_episodes_flag(spec, training)}",
            *commands,
            "```",
            "",
            f"- Data: {training['frames']:,} frames in {training['episodes']} episodes.",
            f"- Time on 2 CPU cores: {training.get('minutes', 0):.1f} minutes ("
            + ", ".join(f"{s} {training[s]['minutes']:.1f}" for s in stages)
            + ").",
            "- Throughput (samples/s): "
            + ", ".join(f"{s} {training[s]['samples_per_second']:.0f}" for s in stages if s != "memory")
            + f" (frames for the autoencoder{' and the outcome head' if reads_frame else ''}, "
            "windows for the others).",
        ]
        if training.get("note"):
            lines.append(f"- Note: {training['note']}")
        if training.get("memory", {}).get("entries"):
            memory = training["memory"]
            more = memory.get("memory_data_episodes")
            lines.append(
                f"- Point memory (memory stage): {memory['entries']:,} distinct steps of the training "
                "episodes"
                + (f" and of {more:,} more (--memory-data)" if more else "")
                + " with the ball in the paddle's zone; in a dream the ball there moves as the nearest of "
                "them did"
                + (
                    f", and {memory['paths']:,} returns' next steps are replayed after them"
                    if memory.get("paths")
                    else ""
                )
                + "."
            )
        if training.get("memory", {}).get("row_entries"):
            lines.append(
                f"- Row memory (memory stage): a table of {training['memory']['row_entries']:,} entries "
                "from the training episodes (the last actions, the row's last move and place -> its next "
                "move); in a dream the paddle's row moves as the table says, once it knows those actions."
            )
        if training.get("autoencoder", {}).get("validation"):
            last = training["autoencoder"]["validation"][-1]
            lines.append(f"- Validation: autoencoder reconstruction PSNR {last['psnr']:.2f} dB.")
        if training.get("outcome", {}).get("validation"):
            last, frames = training["outcome"]["validation"][-1], training["outcome"].get("frames")
            drawn = training["outcome"].get("drawn_frames")
            if drawn:  # a head reading the drawn frame (outcome_input "frame")
                source = (
                    f"(outcome stage, read from the frame: {drawn['train']:,} frames drawn from their "
                    f"latents and encoded again), validated on {drawn['val']:,} held-out frames drawn alike"
                )
            else:
                source = (
                    f"(outcome stage{f', on {frames:,} frames' if frames else ''}), "
                    "validated on the dynamics' own open-loop latents"
                )
            lines.append(
                f"- Reward and episode end {source}: reward RMSE {last['reward_rmse']:.3g} "
                f"(rewards spread {last['reward_std']:.3g}); of the frames where the real episode had "
                f"ended ({last['end_share']:.2%}), {last['end_recall']:.0%} predicted as ended, "
                f"precision {last['end_precision']:.0%}."
            )
    if metrics:
        lines += ["", "## Evaluation against the simulator", "", metrics.get("markdown", "")]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "import worldsim",
        "",
        f'model = worldsim.load("{spec.name}")',
        f'video = model.rollout(start_frame, "{spec.example_actions}")  # (T+1, H, W, 3) uint8',
        "```",
        "",
    ]
    return "\n".join(lines)


def _actions(spec) -> str:
    if spec.action_kind == "discrete":
        return ", ".join(spec.action_names)
    return "continuous " + ", ".join(spec.action_labels)


def _crop(spec) -> str:
    c = spec.crop
    return f"rows {c.top:.0%}-{c.bottom:.0%}, columns {c.left:.0%}-{c.right:.0%} of the rendered frame"


def _describe_kind(config: dict) -> str:
    kind = config.get("kind", "latent")
    if kind != "latent":
        return f"- Kind: `{kind}` (a plugin kind: its package's README describes it)."
    outcome = ""
    if config.get("outcome"):
        values = ", ".join(f"{v:g}" for v in config.get("reward_values", []))  # 1, not 1.0
        snapped = (
            f", the reward snapped to the nearest of those seen in training ({values})" if values else ""
        )
        outcome = f" A head predicts each step's reward and whether the episode ended{snapped}."
    return (
        f"- Kind: `latent`: convolutional frame autoencoder (latent {config['latent_dim']}) "
        + (
            f"with state dynamics: an MLP ({config['hidden_dim']} units) estimates the simulator's state "
            f"({config['state_dims']} features) from the start frames, another steps it under each "
            "action, and a third reads the frame latent out of it. Samples draw the start state "
            "from the estimate's spread (velocities one frame cannot show)."
            if config.get("dynamics") == "state"
            else f"with a GRU ({config['hidden_dim']} units) stepping the latent under each action."
        )
        + (
            " Objects drawn as points (the ball) keep their motion from step to step; the GRU "
            "changes it only where something happens (a bounce)."
            if config.get("point_momentum")
            else ""
        )
        + (
            " Row readings (the paddles) are painted as bands where the latent puts them, so a "
            "paddle moves on screen as its latent row does."
            if config.get("drawn_rows")
            else ""
        )
        + (
            " A contact gate, trained on the steps where the ball's motion truly changed, says when that is."
            if config.get("contact_gate")
            else ""
        )
        + (
            " In view, that motion snaps to the nearest of the speeds the ball keeps in the training data ("
            + "; ".join(
                f"x {', '.join(f'{v:g}' for v in x)} and y {', '.join(f'{v:g}' for v in y)} screen px/step"
                for x, y in config["point_speeds"]
            )
            + ")."
            if config.get("point_speeds")
            else ""
        )
        + (
            " A head picks the ball's next speed among those (or none, for a ball leaving or served), "
            "trained on the true ones: where a bounce may or may not come it picks one future."
            if config.get("speed_classes")
            else ""
        )
        + (
            " It draws the pose within the range the training data had (and each object wholly in view "
            "or not), never an object past where one was ever seen."
            if config.get("pose_bounds")
            else ""
        )
        + (
            " The decoder moves the start frame by a smooth flow before drawing over it, so a view "
            "that scrolls and turns keeps its texture"
            + (
                " (relative to the flow it draws for the start frame itself: a view that has not moved "
                "stays exactly in place)."
                if config.get("relative_flow")
                else "."
            )
            if config.get("warp_reference")
            else ""
        )
        + outcome
    )


def _episodes_flag(spec: EnvSpec, training: dict) -> str:
    """` --episodes N` where the model was trained on more or fewer episodes than `collect`
    gathers by default, so that the command collects the data the card describes."""
    episodes = training.get("episodes")
    return f" --episodes {episodes}" if episodes and episodes != spec.collect_episodes else ""


def _env_flag(spec: EnvSpec) -> str:
    """How `collect` names the environment: a built-in name, or the gymnasium id."""
    builtin = ENV_SPECS.get(spec.name)
    # The built-in's training defaults may have moved on since the model was trained; they do
    # not change what `collect` records.
    if builtin is not None and replace(builtin, train_defaults={}) == replace(spec, train_defaults={}):
        return f"--env {spec.name}"
    flag = f"--env-id {spec.gym_id}"
    indices = tuple(str(i) for i in range(len(spec.action_names)))
    if spec.action_kind == "discrete" and spec.action_names != indices:
        flag += " --action-names " + ",".join(spec.action_names)
    return flag
