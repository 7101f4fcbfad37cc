import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from worldsim.envs.actions import parse_actions
from worldsim.envs.builtin import ENV_SPECS, get_spec
from worldsim.envs.simulator import simulator_frames
from worldsim.envs.spec import preprocess


@pytest.mark.parametrize("name", sorted(ENV_SPECS))
def test_spec_is_consistent(name):
    spec = get_spec(name)
    assert spec.name == name == name.lower()
    assert spec.height % 16 == 0 and spec.width % 16 == 0
    if spec.action_kind == "discrete":
        assert len(set(spec.action_names)) == len(spec.action_names) > 1
        assert all(n == n.lower() and n.isalpha() for n in spec.action_names)
    else:
        assert len(spec.action_low) == len(spec.action_high) == len(spec.action_labels) > 0
    frame = np.zeros((*spec.render_size, 3), np.uint8)
    assert preprocess(frame, spec).shape == (spec.height, spec.width, 3)


@pytest.mark.parametrize("name", sorted(ENV_SPECS))
def test_every_env_makes_renders_and_moves_under_its_example_actions(name):
    spec = get_spec(name)
    frames = simulator_frames(spec, seed=0, actions=spec.example_actions)
    assert frames.dtype == np.uint8
    assert frames.shape == (len(parse_actions(spec.example_actions, spec)) + 1, *spec.render_size, 3)
    assert not np.array_equal(frames[0], frames[-1])  # the actions moved something
    assert preprocess(frames[-1], get_spec(name)).shape == (get_spec(name).height, get_spec(name).width, 3)


def test_simulators_in_two_threads_draw_the_same_frames_as_one_alone():
    """The app renders its showcase in the background while it serves requests: pygame is not
    thread-safe, and without the simulators' lock one CartPole rollout in four came out wrong."""
    cartpole, acrobot = get_spec("cartpole"), get_spec("acrobot")
    alone = simulator_frames(cartpole, seed=7, actions="right*20")
    stop = threading.Event()

    def other_requests():
        while not stop.is_set():
            simulator_frames(acrobot, seed=1, actions="")

    other = threading.Thread(target=other_requests, daemon=True)
    other.start()
    try:
        beside = [simulator_frames(cartpole, seed=7, actions="right*20") for _ in range(20)]
    finally:
        stop.set()
        other.join()
    assert sum(not np.array_equal(frames, alone) for frames in beside) == 0


def test_rendering_on_a_machine_without_a_display_prints_nothing():
    """A server or a Space has no display: SDL printed "XDG_RUNTIME_DIR is invalid" at every
    env's close, into the app's log, until worldsim chose SDL's dummy video driver."""
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "SDL_VIDEODRIVER", "DISPLAY")}
    script = (
        "from worldsim.envs import get_spec; from worldsim.envs.simulator import simulator_frames; "
        "[simulator_frames(get_spec(name), 0, '0 1') for name in ('cartpole', 'acrobot')]"
    )
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""


def test_unknown_env_lists_known_names():
    with pytest.raises(KeyError, match="cartpole"):
        get_spec("../../etc")


def test_preprocess_crops_by_fraction_so_any_screenshot_size_works():
    spec = get_spec("cartpole")
    full = simulator_frames(get_spec("cartpole"), seed=1)[0]
    half = np.asarray(Image.fromarray(full).resize((300, 200), Image.Resampling.BILINEAR))
    a, b = preprocess(full, spec).astype(int), preprocess(half, spec).astype(int)
    assert np.abs(a - b).mean() < 4  # same content, resampled twice
    # The cart (black) and pole (brown) are both inside the crop.
    assert (a.max(axis=-1) < 60).sum() > 20
    assert ((a[..., 0] - a[..., 2]) > 60).sum() > 20


def test_preprocess_keeps_frames_already_at_model_resolution():
    spec = get_spec("cartpole")
    frame = np.random.default_rng(0).integers(0, 255, (spec.height, spec.width, 3), dtype=np.uint8)
    assert np.array_equal(preprocess(frame, spec), frame)


def test_preprocess_rejects_non_rgb():
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess(np.zeros((10, 10), np.uint8), get_spec("cartpole"))
