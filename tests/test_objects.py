import numpy as np

from worldsim.envs import get_spec, preprocess
from worldsim.objects import object_errors, read_objects


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
