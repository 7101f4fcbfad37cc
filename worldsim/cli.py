"""Command line: python -m worldsim {collect, train, eval, agent, rollout, bench, loadtest, soak, ...} ...

collect and train take every field of their config dataclass as a flag (--autoencoder-steps 50);
the help text of each flag is the comment beside the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import shlex
import sys
from pathlib import Path

from worldsim.data.collect import CollectConfig
from worldsim.training.train import TrainConfig


def _field_comments(cls) -> dict[str, str]:
    """The `# comment` after each field of a dataclass's source, as help text."""
    comments = {}
    for line in inspect.getsource(cls).splitlines():
        match = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.+)$", line)
        if match:
            comments[match.group(1)] = match.group(2)
    return comments


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls, omit_unset: bool = False) -> None:
    """One flag per field. With `omit_unset`, flags not given stay out of the parsed namespace, so
    a later layer of defaults (an environment's training defaults) can fill them."""
    comments = _field_comments(cls)
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        help_text = comments.get(field.name, "") + f" (default: {default!r})"
        parsed_default = argparse.SUPPRESS if omit_unset else default
        if isinstance(default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=parsed_default, help=help_text
            )
        else:
            parser.add_argument(flag, type=type(default), default=parsed_default, help=help_text)


def _dataclass_from_args(cls, args: argparse.Namespace):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def _flags_given(cls, args: argparse.Namespace) -> dict:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m worldsim", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    collect = commands.add_parser("collect", help="record episodes from the simulator into shards")
    _add_dataclass_flags(collect, CollectConfig)

    train = commands.add_parser("train", help="train a world model on collected shards")
    train.description = "Flags not given take the environment's training defaults (EnvSpec.train_defaults)."
    _add_dataclass_flags(train, TrainConfig, omit_unset=True)

    evaluate = commands.add_parser("eval", help="measure a model against the simulator on held-out seeds")
    evaluate.add_argument("--model", default="cartpole", help="shipped model name or checkpoint folder")
    evaluate.add_argument(
        "--all", action="store_true", help="every shipped model; also writes <out>/results.md"
    )
    evaluate.add_argument("--episodes", type=int, default=20, help="held-out episodes per action policy")
    evaluate.add_argument("--horizon", type=int, default=60, help="steps rolled out per episode")
    evaluate.add_argument("--out", default="docs", help="folder for the markdown table and plot")
    evaluate.add_argument(
        "--update-card", action="store_true", help="write metrics into the checkpoint's card"
    )
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument(
        "--results-only",
        action="store_true",
        help="with --all: rewrite <out>/results.md from the saved eval_<name>.json, evaluating nothing",
    )

    agent = commands.add_parser(
        "agent", help="a scripted controller's score in the dream and in the real env, same seeds"
    )
    agent.add_argument("--model", default="cartpole", help="shipped model name or checkpoint folder")
    agent.add_argument("--episodes", type=int, default=20, help="held-out seeds, one episode each per world")
    agent.add_argument("--max-steps", type=int, default=300, help="steps at most per episode")
    agent.add_argument("--json", default="", help="also write the scores to this JSON file")
    agent.add_argument("--device", default="cpu")

    rollout = commands.add_parser("rollout", help="imagine a video from a start frame and actions")
    rollout.add_argument("--model", default="cartpole", help="shipped model name or checkpoint folder")
    rollout.add_argument("--start", required=True, help="start frame: PNG, JPEG, WebP or GIF (first frame)")
    rollout.add_argument("--actions", required=True, help='action text, e.g. "right*5 left*5", or @file.txt')
    rollout.add_argument("--out", default="rollout.mp4", help="output video (.mp4 or .gif)")
    rollout.add_argument("--seed", type=int, default=None, help="seed for sampled models")
    rollout.add_argument("--device", default="cpu")

    push = commands.add_parser("push", help="upload a checkpoint to the Hugging Face Hub with its model card")
    push.add_argument("--model", default="cartpole", help="shipped model name or checkpoint folder")
    push.add_argument("--repo", required=True, help="Hub repo id, owner/name")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument(
        "--dry-run", action="store_true", help="only write the folder it would upload; print its path"
    )

    push_data = commands.add_parser("push-data", help="publish collected episodes as a Hub dataset (Parquet)")
    push_data.add_argument("--env", default="cartpole", help="environment spec name")
    push_data.add_argument("--data", default="", help="shard folder; default data/<env>")
    push_data.add_argument("--repo", required=True, help="Hub dataset repo id, owner/name")
    push_data.add_argument("--private", action="store_true", help="create the repo private")
    push_data.add_argument("--dry-run", action="store_true", help="only write the folder it would upload")

    calibrate = commands.add_parser(
        "calibrate", help="score held-out frames, so the app can warn about unfamiliar uploads"
    )
    calibrate.add_argument("--model", default="cartpole", help="checkpoint folder (shipped name or path)")
    calibrate.add_argument("--data", default="", help="the model's training data; default data/<env>")
    calibrate.add_argument(
        "--seed", type=int, default=0, help="the training seed (it chose the held-out episodes)"
    )
    calibrate.add_argument("--val-fraction", type=float, default=0.05, help="the training's held-out share")

    snapshot = commands.add_parser("snapshot", help="save a real simulator frame, to use as a start frame")
    snapshot.add_argument(
        "--env", default="cartpole", help="a built-in environment name or any gymnasium id (e.g. Acrobot-v1)"
    )
    snapshot.add_argument("--seed", type=int, default=0, help="reset seed")
    snapshot.add_argument("--actions", default="", help="actions to play before the snapshot")
    snapshot.add_argument("--out", required=True, help="PNG path")

    models = commands.add_parser("models", help="list the models the app would offer")
    models.add_argument("--json", action="store_true", help="a JSON list, one object per model")
    models.add_argument("extra", nargs="*", help="also these: hf://owner/name ids or checkpoint folders")

    showcase = commands.add_parser(
        "showcase", help="the README's animation: a model's dream beside the real simulator, as a GIF"
    )
    showcase.add_argument("--model", default="cartpole", help="shipped or plugin model (its first example)")
    showcase.add_argument("--out", default="docs/showcase.gif", help="output .gif (or .mp4)")
    showcase.add_argument(
        "--layout", choices=["wide", "stacked"], default="wide", help="in a row, or one above the other"
    )

    export = commands.add_parser(
        "export", help="a model's start and step as ONNX graphs (play in the page), checked against torch"
    )
    export.add_argument("--model", default="cartpole", help="shipped model name, folder or hf:// id")
    export.add_argument("--all", action="store_true", help="every shipped model, into its checkpoint folder")
    export.add_argument("--out", default="", help="folder for start.onnx and step.onnx; default: the model's")
    export.add_argument("--force", action="store_true", help="export again even where the graphs are current")

    bench = commands.add_parser("bench", help="rollout speed and cold start, medians")
    bench.add_argument("--model", default="cartpole", help="shipped model name or checkpoint folder")
    bench.add_argument("--all", action="store_true", help="every shipped model; writes docs/bench.md")
    bench.add_argument("--steps", type=int, default=60, help="steps per rollout")
    bench.add_argument("--repeats", type=int, default=7, help="timed runs; the median is reported")
    bench_app = commands.add_parser("bench-app", help="upload to playing video in headless Chromium, median")
    bench_app.add_argument("--url", default="http://127.0.0.1:7860/", help="a running app")
    bench_app.add_argument("--steps", type=int, default=60, help="actions per rollout")
    bench_app.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up")

    bench_play = commands.add_parser("bench-play", help="live-play frames per second in headless Chromium")
    bench_play.add_argument("--url", default="http://127.0.0.1:7860/", help="a running app")
    bench_play.add_argument("--seconds", type=float, default=60.0, help="how long keys are held")

    loadtest = commands.add_parser(
        "loadtest", help="concurrent users sending rollouts and bad input to a running app"
    )
    soak = commands.add_parser("soak", help="sequential rollouts: the server's memory and temp files")
    for sub in (loadtest, soak):
        sub.add_argument("--url", default="http://127.0.0.1:7860/", help="a running app")
        sub.add_argument("--steps", type=int, default=60, help="actions per valid rollout")
        sub.add_argument(
            "--timeout", type=float, default=60.0, help="seconds before a request counts as hung"
        )
        sub.add_argument("--json", default="", help="also write the report to this JSON file")
    loadtest.add_argument("--users", type=int, default=20, help="concurrent users, one client each")
    loadtest.add_argument("--requests", type=int, default=200, help="requests in all, shared by the users")
    loadtest.add_argument("--seed", type=int, default=0, help="seed of the request mix")
    soak.add_argument("--requests", type=int, default=500, help="rollouts, one after another")
    soak.add_argument(
        "--pid", type=int, default=None, help="server pid; default: who listens on --url's port"
    )
    soak.add_argument("--sample-every", type=int, default=50, help="read the server's RSS every N requests")
    return parser


def gym_errors() -> type[Exception]:
    """gymnasium's own error base (an unknown id, a missing extra), reported like ours."""
    from gymnasium.error import Error

    return Error


def env_spec(name: str):
    """A built-in environment by name, or any gymnasium id (its spec derived from the env)."""
    from worldsim.envs.builtin import ENV_SPECS, get_spec
    from worldsim.envs.spec import derive_spec

    name = name.strip()
    if name.lower() in ENV_SPECS:
        return get_spec(name)
    # A built-in environment by its gymnasium id (ALE/Breakout-v5) keeps its make kwargs and modules.
    return next((spec for spec in ENV_SPECS.values() if spec.gym_id == name), None) or derive_spec(name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    command = "python -m worldsim " + shlex.join(argv)
    try:
        return _run(args, command)
    except (ValueError, KeyError, FileNotFoundError, gym_errors()) as error:  # our messages, no traceback
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, command: str) -> int:
    if args.command == "collect":
        from worldsim.data.collect import collect

        config = _dataclass_from_args(CollectConfig, args)
        if config.source:
            from worldsim.data.dataset import materialize_shards

            spec = config.spec()
            out = config.out or f"data/{spec.name}"
            paths = materialize_shards(config.source, spec, out, config.shard_episodes)
        else:
            paths = collect(config)
        print(f"{len(paths)} shards in {paths[0].parent if paths else config.out}")
    elif args.command == "train":
        from worldsim.training.train import train

        flags = _flags_given(TrainConfig, args)
        train(TrainConfig.for_env(flags.pop("env", TrainConfig.env), **flags), command=command)
    elif args.command == "eval":
        from worldsim.evaluation.evaluate import evaluate_model

        if args.all:
            from worldsim.evaluation.evaluate import evaluate_all, write_results
            from worldsim.models.checkpoint import shipped_checkpoints

            if args.results_only:
                print(write_results(Path(args.out), list(shipped_checkpoints())))
            else:
                print(evaluate_all(args.episodes, args.horizon, Path(args.out), args.update_card))
        else:
            evaluate_model(
                args.model, args.episodes, args.horizon, Path(args.out), args.update_card, args.device
            )
    elif args.command == "agent":
        from worldsim.evaluation.agents import CONTROLLERS, agent_scores
        from worldsim.models.registry import load

        if args.episodes < 1 or args.max_steps < 1:
            raise ValueError("--episodes and --max-steps must be at least 1")
        model = load(args.model, args.device)
        scores = agent_scores(model, args.episodes, args.max_steps)
        if scores is None:
            raise ValueError(
                f"no scripted controller for {model.spec.name}; "
                f"there are for {', '.join(sorted(CONTROLLERS))}"
            )
        print(scores["markdown"])
        if args.json:
            Path(args.json).write_text(json.dumps({"command": command, **scores}, indent=1) + "\n")
    elif args.command == "rollout":
        from worldsim.rollout import rollout_to_file

        path = rollout_to_file(args.model, args.start, args.actions, args.out, args.seed, args.device)
        print(path)
    elif args.command == "push":
        from worldsim.hub.client import push
        from worldsim.models.checkpoint import resolve

        print(push(resolve(args.model), args.repo, private=args.private, dry_run=args.dry_run))
    elif args.command == "push-data":
        from worldsim.data.dataset import push_dataset
        from worldsim.envs.builtin import get_spec

        data = args.data or f"data/{args.env}"
        print(push_dataset(data, get_spec(args.env), args.repo, private=args.private, dry_run=args.dry_run))
    elif args.command == "calibrate":
        import numpy as np

        from worldsim.data.dataset import load_any_episodes
        from worldsim.evaluation.familiarity import save_calibration
        from worldsim.models.checkpoint import load, resolve
        from worldsim.training.train import calibrate_on, split_episodes

        folder, model = resolve(args.model), load(args.model)
        data = load_any_episodes(args.data or f"data/{model.spec.name}", model.spec)
        train_eps, val_eps = split_episodes(
            data.num_episodes, args.val_fraction, np.random.default_rng(args.seed)
        )
        calibration = calibrate_on(model, data, train_eps, val_eps)
        save_calibration(calibration, folder)
        print(
            f"{folder}: {calibration['coverage']:.0%} of {calibration['frames']} held-out frames "
            f"reconstruct at {calibration['threshold_psnr']:.1f} dB or better "
            f"(median {calibration['median_psnr']:.1f} dB)"
        )
    elif args.command == "snapshot":
        from PIL import Image

        from worldsim.envs.simulator import simulator_frames

        frames = simulator_frames(env_spec(args.env), args.seed, args.actions)
        Image.fromarray(frames[-1]).save(args.out)
        print(args.out)
    elif args.command == "models":
        from worldsim.models.catalog import model_entries

        described = [entry.describe() for entry in model_entries(args.extra)]
        if args.json:
            print(json.dumps(described, indent=1))
        else:
            for m in described:
                kind, env, example = m["kind"] or "?", m["env"] or "?", m["example_actions"] or ""
                print(f"{m['name']:<22} {kind:<12} {env:<22} {m['source']:<8} {example}")
    elif args.command == "showcase":
        from worldsim.app.showcase import write_gif

        path = write_gif(args.out, args.model, args.layout)
        print(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")
    elif args.command == "export":
        import torch

        from worldsim.models.checkpoint import shipped_checkpoints
        from worldsim.models.onnx_export import export_command

        torch.set_num_threads(1)  # the check times one thread, as a page runs
        names = sorted(shipped_checkpoints()) if args.all else [args.model]
        passed = [export_command(name, None if args.all else args.out or None, args.force) for name in names]
        return 0 if all(passed) else 1
    elif args.command == "bench":
        from worldsim.tools.bench import run_benchmark

        if args.all:
            from worldsim.tools.bench import run_all_benchmarks

            print(run_all_benchmarks(args.steps, args.repeats))
        else:
            run_benchmark(args.model, args.steps, args.repeats)
    elif args.command == "bench-app":
        from worldsim.tools.bench_app import run_app_benchmark

        run_app_benchmark(args.url, args.steps, args.repeats)
    elif args.command == "bench-play":
        from worldsim.tools.bench_app import run_play_benchmark

        run_play_benchmark(args.url, args.seconds)
    elif args.command in ("loadtest", "soak"):
        from worldsim.tools import loadtest

        if args.command == "loadtest":
            report = loadtest.run_loadtest(
                args.url, args.users, args.requests, args.timeout, args.steps, args.seed
            )
            print(loadtest.format_load_report(report))
        else:
            report = loadtest.run_soak(
                args.url, args.requests, args.pid, args.timeout, args.steps, args.sample_every
            )
            print(loadtest.format_soak_report(report))
        if args.json:
            Path(args.json).write_text(json.dumps({"command": command, **report}, indent=2) + "\n")
    return 0
