import numpy as np

from worldsim.envs.builtin import get_spec
from worldsim.envs.objects import object_errors, read_objects
from worldsim.envs.spec import preprocess


def test_cartpole_readout_matches_the_simulator_state():
    spec = get_spec("cartpole")
    env = spec.make()
    rng = np.random.default_rng(0)
    frames, states = [], []
    env.reset(seed=4)
    for _ in range(60):
        frames.append(preprocess(env.render(), spec))
        states.append(np.array(env.unwrapped.state))
        _, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
        if terminated or truncated:
            break
    readout = read_objects(np.stack(frames), spec)
    states = np.stack(states)
    found = ~np.isnan(readout["cart_x"])
    assert found.all()
    assert np.abs(readout["cart_x"] - states[:, 0]).max() < 0.02  # track units (4.8 wide)
    assert np.abs(readout["pole_angle_deg"] - np.degrees(states[:, 2])).max() < 1.5


def test_empty_frame_has_no_objects_and_angle_errors_wrap():
    spec = get_spec("cartpole")
    readout = read_objects(np.full((2, 64, 160, 3), 255, np.uint8), spec)
    assert np.isnan(readout["cart_x"]).all()
    errors = object_errors({"pole_angle_deg": np.array([179.0])}, {"pole_angle_deg": np.array([-179.0])})
    assert errors["pole_angle_deg"][0] == 2.0


def _atari_frames_and_ram(name: str, ram_columns: list[int], steps: int = 200):
    spec = get_spec(name)
    env = spec.make(disable_env_checker=True)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    frames, ram = [], []
    for t in range(steps):
        env.step(1 if t % 40 == 0 else int(rng.integers(spec.num_actions)))  # fire serves the ball
        frames.append(preprocess(env.render(), spec))
        ram.append(env.unwrapped.ale.getRAM()[ram_columns].astype(float))
    env.close()
    return read_objects(np.stack(frames), spec), np.stack(ram)


def _assert_tracks(
    read: np.ndarray, truth: np.ndarray, tolerance: float, min_found: float, where: np.ndarray | None = None
):
    """The readout follows the console's own coordinate up to a constant offset (RAM coordinates
    are shifted from screen pixels). A ball passing the paddle may pull a few readings off."""
    if where is not None:
        read, truth = read[where], truth[where]
    found = ~np.isnan(read)
    assert found.mean() >= min_found
    offset = read[found] - truth[found]
    assert np.quantile(np.abs(offset - np.median(offset)), 0.95) < tolerance


def test_breakout_readout_follows_paddle_and_ball_in_ram():
    readout, ram = _atari_frames_and_ram("breakout", [72, 99, 101])  # paddle x, ball x, ball y
    assert (~np.isnan(readout["paddle_x"])).all()
    # Against the right wall (x 191) half the paddle hides: compare the frames where all of it shows.
    _assert_tracks(readout["paddle_x"], ram[:, 0], tolerance=3, min_found=0.9, where=ram[:, 0] < 185)
    _assert_tracks(readout["ball_x"], ram[:, 1], tolerance=2, min_found=0.3)
    _assert_tracks(readout["ball_y"], ram[:, 2], tolerance=3, min_found=0.3)


def test_pong_readout_follows_both_paddles_and_ball_in_ram():
    # player y, ball x, ball y, opponent y
    readout, ram = _atari_frames_and_ram("pong", [51, 49, 54, 50])
    # At RAM y 38 or 203 a paddle slides half under a wall: it is still found, at the wall, but
    # its centre there is the centre of the half in view.
    in_court = (ram[:, 0] > 45) & (ram[:, 0] < 195)
    assert (~in_court).mean() > 0.1 and (~np.isnan(readout["paddle_y"][~in_court])).mean() > 0.95
    _assert_tracks(readout["paddle_y"], ram[:, 0], tolerance=3, min_found=0.9, where=in_court)
    opponent_in_court = (ram[:, 3] > 45) & (ram[:, 3] < 195)
    assert opponent_in_court.mean() > 0.5  # the opponent follows the ball up and down the court
    _assert_tracks(readout["opponent_y"], ram[:, 3], tolerance=3, min_found=0.9, where=opponent_in_court)
    _assert_tracks(readout["ball_x"], ram[:, 1], tolerance=2, min_found=0.3)
    _assert_tracks(readout["ball_y"], ram[:, 2], tolerance=3, min_found=0.3)


def test_carracing_readout_sees_the_car_leave_the_road():
    spec = get_spec("carracing")
    env = spec.make(disable_env_checker=True)
    env.reset(seed=0)
    offsets = []
    for t in range(120):  # wait out the zoom, then drive straight, then steer hard right
        env.step(np.array([1.0 if t >= 80 else 0.0, 0.3 if t >= 50 else 0.0, 0.0], np.float32))
        offsets.append(read_objects(preprocess(env.render(), spec)[None], spec)["track_offset"][0])
    env.close()
    offsets = np.array(offsets)
    assert np.abs(offsets[55:80]).max() < 4  # on the centre line of a straight start
    assert np.nanmax(np.abs(offsets[80:])) > 10 or np.isnan(offsets[100:]).any()  # off it, or off the road


def test_pendulum_readout_matches_theta_and_rejects_a_blob():
    spec = get_spec("pendulum")
    env = spec.make(disable_env_checker=True)
    env.reset(seed=1)
    frames, thetas = [], []
    for _ in range(40):
        frames.append(preprocess(env.render(), spec))
        thetas.append(np.degrees(env.unwrapped.state[0]))
        env.step(np.array([2.0], np.float32))
    env.close()
    readout = read_objects(np.stack(frames), spec)
    errors = object_errors(readout, {"rod_angle_deg": np.array(thetas)})["rod_angle_deg"]
    assert errors.max() < 2.0  # degrees, through the wrap at +-180
    # A red blob on the pivot (what an averaging model draws) is not a rod.
    blob = np.full((1, spec.height, spec.width, 3), 255, np.uint8)
    blob[0, 28:36, 28:36] = (204, 77, 77)
    assert np.isnan(read_objects(blob, spec)["rod_angle_deg"]).all()


def test_object_pose_fills_missing_readings_and_flags_them():
    from worldsim.envs.objects import object_pose

    spec = get_spec("breakout")
    frames = np.zeros((3, spec.height, spec.width, 3), np.uint8)  # empty playfield: nothing in view
    env = spec.make(disable_env_checker=True)
    env.reset(seed=3)
    env.step(1)
    frames[1] = preprocess(env.render(), spec)  # the paddle, no ball yet
    env.close()
    pose = object_pose(frames, spec)
    assert pose.shape == (3, 6)  # paddle x, ball x, ball y, each with an in-view flag
    assert pose[:, 1].tolist() == [0, 1, 0]  # the paddle is in view in frame 1 only
    assert not np.isnan(pose).any() and pose[0, 0] == pose[1, 0]  # missing -> the seen mean
    assert object_pose(frames, get_spec("acrobot")) is None


def _classic_frames_and_states(spec, truth, steps: int = 300, seed: int = 0):
    """Frames of sticky random play (resets where an episode ends) and the simulator's value."""
    env = spec.make(disable_env_checker=True)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    frames, values, action = [], [], 0
    for t in range(steps):
        frames.append(preprocess(env.render(), spec))
        values.append(truth(env, obs))
        if rng.random() < 0.2:
            action = int(rng.integers(spec.num_actions))
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + t + 1)
    env.close()
    return np.stack(frames), np.array(values)


def test_acrobot_readout_follows_the_first_link_angle():
    from worldsim.envs.objects import read_acrobot

    spec = get_spec("acrobot")
    frames, theta = _classic_frames_and_states(spec, lambda env, obs: np.degrees(env.unwrapped.state[0]))
    read = read_acrobot(frames, spec)["link1_angle_deg"]
    found = ~np.isnan(read)
    assert found.mean() > 0.9  # only a second link folded back over the first hides it
    errors = object_errors({"a": read[found]}, {"a": theta[found]})["a"]
    errors = (errors + 180) % 360 - 180  # object_errors wraps only the known angle keys
    assert np.quantile(np.abs(errors), 0.95) < 2 and np.abs(errors).max() < 10


def test_mountaincar_readout_follows_the_car_position():
    from worldsim.envs.objects import read_mountaincar

    spec = get_spec("mountaincar")
    frames, x = _classic_frames_and_states(spec, lambda env, obs: env.unwrapped.state[0])
    read = read_mountaincar(frames, spec)["car_x"]
    found = ~np.isnan(read)
    assert found.all()  # the simulator's own car is never lost in the valley (3% of these were, at 0.6)
    assert np.abs(read[found] - x[found]).max() < 0.015  # of 1.8 units: 5 render px, 0.8 model px


def test_lunarlander_readout_follows_the_lander_x():
    import json
    from pathlib import Path

    from worldsim.envs.objects import read_lunarlander
    from worldsim.envs.spec import EnvSpec

    config = Path(__file__).parents[1] / "checkpoints" / "lunarlander" / "config.json"
    spec = EnvSpec.from_dict(json.loads(config.read_text())["env"])
    frames, x = _classic_frames_and_states(spec, lambda env, obs: obs[0])
    read = read_lunarlander(frames, spec)["lander_x"]
    found = ~np.isnan(read)
    assert found.mean() > 0.9
    # of 2 (half screen widths); 0.015 is 4.5 render px, one model pixel: a tilted lander and its
    # legs, or a crash, shift the purple centre a little
    assert np.quantile(np.abs(read[found] - x[found]), 0.95) < 0.015
