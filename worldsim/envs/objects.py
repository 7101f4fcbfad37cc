"""Objects read back from frames: PSNR is dominated by background, so evaluation also asks where
the things are. One reader per environment where that is simple; each returns named arrays with
NaN where the object is not in the frame (a cart driven off screen).

    >>> readout = read_objects(frames, get_spec("cartpole"))   # frames (N, 64, 160, 3) uint8
    >>> readout["cart_x"], readout["pole_angle_deg"]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from worldsim.envs.spec import EnvSpec

# CartPole-v1's renderer: 600 px for 4.8 track units, axle 107.5 px above the bottom of a 400 px
# screen (cart top 115 minus a quarter of its 30 px height).
_CARTPOLE_PX_PER_UNIT = 600 / 4.8
_CARTPOLE_AXLE_ROW = 400 - 107.5


def read_cartpole(frames: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray]:
    """Cart position (track units) and pole angle (degrees, + leans right) per frame (N, h, w, 3)."""
    frames = frames.astype(np.float32)
    h, w = frames.shape[1:3]
    scale = (spec.crop.right - spec.crop.left) * 600 / w  # render pixels per model pixel
    top = spec.crop.top * 400
    rows = (np.arange(h) + 0.5) * scale + top  # pixel centres in render coordinates
    cols = (np.arange(w) + 0.5) * scale + spec.crop.left * 600
    # Cart: black; pixels blended with white keep brightness in proportion to coverage.
    cart = np.clip(1 - frames.max(axis=-1) / 255, 0, 1)
    cart[cart < 0.5] = 0  # the 1 px track line is light grey at this scale
    # Pole: the only colour with red well above blue (202, 152, 101); coverage from r - b.
    pole = np.clip((frames[..., 0] - frames[..., 2]) / 101, 0, 1)
    pole[pole < 0.2] = 0
    cart_mass = cart.sum(axis=(1, 2))
    pole_mass = pole.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        cart_col = (cart.sum(axis=1) * cols).sum(axis=1) / cart_mass
        pole_col = (pole.sum(axis=1) * cols).sum(axis=1) / pole_mass
        pole_row = (pole.sum(axis=2) * rows).sum(axis=1) / pole_mass
    # A cart partly off screen has a biased centre; call it missing unless mostly visible.
    full_cart = (50 * 30) / scale**2
    found = (cart_mass > 0.6 * full_cart) & (pole_mass > 3)
    cart_x = np.where(found, (cart_col - 300) / _CARTPOLE_PX_PER_UNIT, np.nan)
    angle = np.degrees(np.arctan2(pole_col - cart_col, _CARTPOLE_AXLE_ROW - pole_row))
    return {"cart_x": cart_x, "pole_angle_deg": np.where(found, angle, np.nan)}


def render_grid(frames: np.ndarray, spec: EnvSpec) -> tuple[np.ndarray, np.ndarray]:
    """Row and column centres of model pixels in the rendered frame's pixel coordinates."""
    h, w = frames.shape[1:3]
    top, left, row_step, col_step = spec.view_in_render(h, w)
    return top + (np.arange(h) + 0.5) * row_step, left + (np.arange(w) + 0.5) * col_step


def _centroid(
    weights: np.ndarray, rows: np.ndarray, cols: np.ndarray, min_mass: float
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted centre (row, col) per frame of a (N, h, w) coverage map; NaN below `min_mass`
    (measured in render pixels, so it does not depend on the model's resolution)."""
    pixel_area = (rows[1] - rows[0]) * (cols[1] - cols[0])
    mass = weights.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        row = (weights.sum(axis=2) * rows).sum(axis=1) / mass
        col = (weights.sum(axis=1) * cols).sum(axis=1) / mass
    found = mass * pixel_area >= min_mass
    return np.where(found, row, np.nan), np.where(found, col, np.nan)


def read_pendulum(frames: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray]:
    """The rod's angle in degrees (0 upright, + anticlockwise, as the simulator's theta).

    The rod (204, 77, 77) turns about the centre of the 500x500 render and is 114 px long, so the
    centre of its red sits ~57 px out. A red blob at the pivot (a model averaging futures) or a
    short, faded rod counts as not found: that is the collapse the evaluation looks for.
    """
    frames = frames.astype(np.float32)
    rows, cols = render_grid(frames, spec)
    red = np.clip((frames[..., 0] - frames[..., 1]) / 127, 0, 1)
    red[red < 0.25] = 0
    row, col = _centroid(red, rows, cols, min_mass=0.5 * 114 * 23)
    centre = spec.render_size[0] / 2
    dx, dy = col - centre, row - centre
    with np.errstate(invalid="ignore"):
        rod = np.hypot(dx, dy) > 0.7 * 57
    return {"rod_angle_deg": np.where(rod, np.degrees(np.arctan2(-dx, -dy)), np.nan)}


def read_breakout(frames: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray]:
    """Paddle column and ball position, in pixels of the 160x210 Atari screen.

    Paddle and ball share one red (200, 72, 72); the paddle lives in screen rows 189-193, the ball
    is read below the bricks (rows 94-188): inside the brick rows it counts as not found.
    """
    frames = frames.astype(np.float32)
    rows, cols = render_grid(frames, spec)
    red = np.clip((frames[..., 0] - frames[..., 1]) / 128, 0, 1)  # paddle/ball 128; bricks <= 128
    red[red < 0.25] = 0
    paddle_rows = (rows > 188.5) & (rows < 196)
    ball_rows = (rows > 94) & (rows < 187)
    inside_walls = (cols > 9) & (cols < 151)  # a red block ends the right wall at paddle height
    paddle = red * (paddle_rows[:, None] & inside_walls[None, :])
    # Against a side wall only half the paddle shows: its visible centre is what is read then.
    _, paddle_x = _centroid(paddle, rows, cols, min_mass=0.3 * 16 * 4)
    ball_y, ball_x = _centroid(red * ball_rows[:, None], rows, cols, min_mass=0.4 * 2 * 4)
    return {"paddle_x": paddle_x, "ball_x": ball_x, "ball_y": ball_y}


def read_pong(frames: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray]:
    """The player's (right, green) paddle row, the ball position and the opponent's (left, orange)
    paddle row, in Atari screen pixels."""
    frames = frames.astype(np.float32)
    rows, cols = render_grid(frames, spec)
    r, g, b = frames[..., 0], frames[..., 1], frames[..., 2]
    # Green paddle (92, 186, 92): the only colour with green above red; court (144, 72, 17).
    green = np.clip((g - r) / 94, 0, 1)
    green[green < 0.25] = 0
    # Ball (236, 236, 236), usually blended with the court at this scale: its cover is how far
    # blue rose from the court's 17. The paddles raise blue too, but the green one raises green
    # more than blue and the orange one red more than blue.
    white = np.clip((b - 17) / 219, 0, 1) * (g - r + 72 < b - 17) * (r - 144 < 0.6 * (b - 17))
    white[white < 0.2] = 0
    # Orange paddle (213, 130, 74): red and blue rise from the court's in the paddle's proportion;
    # the ball's blue rises far more than its red.
    orange = np.clip((r - 144) / 69, 0, 1) * (b - 17 < 0.9 * (r - 144))
    orange[orange < 0.25] = 0
    # At the top and bottom of the court the paddles slide half under the walls (a sixth of their
    # frames under random keys): the half in view still places them, at the wall.
    paddle_y, _ = _centroid(green * (cols > 136)[None, :], rows, cols, min_mass=0.3 * 4 * 8)
    ball_y, ball_x = _centroid(white, rows, cols, min_mass=0.4 * 2 * 4)
    opponent_y, _ = _centroid(orange * (cols < 24)[None, :], rows, cols, min_mass=0.3 * 4 * 8)
    # The opponent comes last, so that the pose columns of earlier models keep their places.
    return {"paddle_y": paddle_y, "ball_x": ball_x, "ball_y": ball_y, "opponent_y": opponent_y}


def read_carracing(frames: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray]:
    """Where the car is on the track: its column minus the centre of the road just ahead of it,
    in pixels of the 96x96 view (the camera follows the car, so the car is always at column 48,
    rows 66-77). NaN where the car or the road ahead is not found."""
    frames = frames.astype(np.float32)
    rows, cols = render_grid(frames, spec)
    r, g = frames[..., 0], frames[..., 1]
    # Road: grey, about 100-110 in every channel; grass has green ~100 above red.
    road = np.clip(1 - np.abs(g - r) / 30, 0, 1) * ((r > 70) & (r < 140))
    road[road < 0.5] = 0
    ahead = (rows > 57) & (rows < 64)
    _, road_col = _centroid(road * ahead[:, None], rows, cols, min_mass=4 * 6)
    # Car: red (204, 0, 0) at its fixed place.
    car = np.clip((r - g) / 150, 0, 1) * (((rows > 65) & (rows < 78))[:, None] & ((cols > 43) & (cols < 53)))
    car[car < 0.3] = 0
    car_row, _ = _centroid(car, rows, cols, min_mass=8)
    return {"track_offset": np.where(np.isnan(car_row), np.nan, 48 - road_col)}


# Acrobot-v1's renderer: the first link (cyan, 0 204 204) turns about the centre of the 500x500
# screen, 1 unit = 500 / 4.4 px long (the view spans 2.2 units each way) and 0.2 units wide.
_ACROBOT_LINK_PX = 500 / 4.4


def read_acrobot(frames: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray]:
    """The first link's angle in degrees (0 hanging down, + towards the screen's right, as the
    simulator's theta1).

    Both links are the same cyan, so the link is read in a ring close to the pivot (0.2..0.55
    link lengths out), where only the first link passes unless the second is folded back over it
    (more than ~150 degrees at the joint). Then the ring's cyan spreads over several directions:
    where its pixels do not point one way, the reading is NaN rather than a biased angle.
    """
    frames = frames.astype(np.float32)
    rows, cols = render_grid(frames, spec)
    r, g, b = frames[..., 0], frames[..., 1], frames[..., 2]
    cyan = np.clip((np.minimum(g, b) - r) / 204, 0, 1)  # white, black and yellow joints: 0
    cyan[cyan < 0.25] = 0
    centre_row, centre_col = spec.render_size[0] / 2, spec.render_size[1] / 2
    dy, dx = rows[:, None] - centre_row, cols[None, :] - centre_col
    radius = np.hypot(dx, dy)
    ring = (radius > 0.2 * _ACROBOT_LINK_PX) & (radius < 0.55 * _ACROBOT_LINK_PX)
    weights = cyan * ring
    pixel_area = (rows[1] - rows[0]) * (cols[1] - cols[0])
    mass = weights.sum(axis=(1, 2))
    # Mean direction of the ring's cyan pixels, and how concentrated it is (1: all one way).
    with np.errstate(invalid="ignore", divide="ignore"):
        ux = (weights * dx / radius).sum(axis=(1, 2)) / mass
        uy = (weights * dy / radius).sum(axis=(1, 2)) / mass
    found = (mass * pixel_area >= 0.5 * 0.35 * _ACROBOT_LINK_PX * 0.2 * _ACROBOT_LINK_PX) & (
        np.hypot(ux, uy) > 0.9
    )
    return {"link1_angle_deg": np.where(found, np.degrees(np.arctan2(ux, uy)), np.nan)}


# MountainCar-v0's renderer: 600 px for positions -1.2..0.6; the car is a black 40x20 px box
# standing 10 px above the track, turned by cos(3 x) radians about the middle of its bottom edge.
_MOUNTAINCAR_PX_PER_UNIT = 600 / 1.8
_MOUNTAINCAR_MIN_X = -1.2


def read_mountaincar(frames: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray]:
    """The car's position in the simulator's units (-1.2..0.6) per frame.

    The car's body is the only large black area: the track and the flag pole are 1 px lines
    that fade to light grey at the model's scale, and the wheels are mid grey. The body's centre
    sits 10 px up its tilted axis from the point the position names; that shift is undone. At the
    left wall (x = -1.2) the car is read to 0.01; at the goal (x = 0.6), half off screen, it is
    not found.
    """
    # The simulator's own car covers 449-568 px of dark (median 526), so 0.45 of the body's 40x20
    # must be there. (At 0.6, 480 px, 3% of the simulator's own frames lost the car, and a model's
    # car drawn 5% fainter counted as lost in action following.)
    frames = frames.astype(np.float32)
    rows, cols = render_grid(frames, spec)
    car = np.clip(1 - frames.max(axis=-1) / 255, 0, 1)
    car[car < 0.6] = 0  # wheels (128) are 0.5
    _, col = _centroid(car, rows, cols, min_mass=0.45 * 40 * 20)
    x = (col - 0.5) / _MOUNTAINCAR_PX_PER_UNIT + _MOUNTAINCAR_MIN_X  # pixel centres: col 0 is 0.5
    for _ in range(3):  # the body's centre is 10 px along its axis, turned by cos(3 x): solve for x
        x = (col - 0.5 + 10 * np.sin(np.cos(3 * x))) / _MOUNTAINCAR_PX_PER_UNIT + _MOUNTAINCAR_MIN_X
    return {"car_x": x}


# LunarLander-v3's renderer: 30 px per unit, the lander's x in the observation is
# (x - 10) / 10 units, i.e. (column - 300) / 300 of the 600 px wide screen.
def read_lunarlander(frames: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray]:
    """The lander's x as the observation gives it (-1 left edge, 0 centre, +1 right edge).

    The lander and its legs are the only purple (128, 102, 230): blue far above green, where the
    exhaust particles (red to white), sky (black), ground (white) and flags (yellow) have none.
    """
    frames = frames.astype(np.float32)
    rows, cols = render_grid(frames, spec)
    purple = np.clip((frames[..., 2] - frames[..., 1]) / 128, 0, 1)
    purple[purple < 0.25] = 0
    _, col = _centroid(purple, rows, cols, min_mass=100)
    half = spec.render_size[1] / 2
    return {"lander_x": (col - half) / half}


OBJECT_READERS: dict[str, Callable[[np.ndarray, EnvSpec], dict[str, np.ndarray]]] = {
    "cartpole": read_cartpole,
    "pendulum": read_pendulum,
    "breakout": read_breakout,
    "pong": read_pong,
    "carracing": read_carracing,
}

# How to compare two readouts: angles wrap around.
ANGLE_KEYS = {"pole_angle_deg", "rod_angle_deg", "link1_angle_deg"}


def read_objects(frames: np.ndarray, spec: EnvSpec) -> dict[str, np.ndarray] | None:
    """Named object positions per frame, or None where no reader exists for the environment."""
    reader = OBJECT_READERS.get(spec.object_reader or "")
    return None if reader is None else reader(frames, spec)


def object_pose(frames: np.ndarray, spec: EnvSpec, chunk: int = 2048) -> np.ndarray | None:
    """(N, h, w, 3) frames -> (N, 2 * objects) training targets: each reading, and a 0/1 flag for
    whether it was in view (a missing reading takes the mean, so the flag says it is absent).
    None where the environment has no reader."""
    if spec.object_reader not in OBJECT_READERS:
        return None
    readings: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(frames), chunk):  # bounded memory: the readers work in float32
        for key, values in read_objects(frames[start : start + chunk], spec).items():
            readings.setdefault(key, []).append(values)
    columns = []
    for parts in readings.values():
        values = np.concatenate(parts)
        seen = ~np.isnan(values)
        fill = values[seen].mean() if seen.any() else 0.0
        columns += [np.where(seen, values, fill), seen.astype(np.float64)]
    return np.stack(columns, axis=1)


def pose_columns(spec: EnvSpec) -> dict[str, int]:
    """Each reading's column among `object_pose`'s (its in-view flag is the next one)."""
    keys = read_objects(np.zeros((1, spec.height, spec.width, 3), np.uint8), spec) or {}
    return {key: 2 * i for i, key in enumerate(keys)}


def object_points(spec: EnvSpec) -> list[list[int]]:
    """The positions among `object_pose`'s columns: [x column, y column, its in-view flag] for
    every object read as `<name>_x` and `<name>_y` (Pong's and Breakout's ball)."""
    if spec.object_reader not in OBJECT_READERS:
        return []
    column = pose_columns(spec)
    return [
        [column[key], column[key[:-2] + "_y"], column[key] + 1]
        for key in column
        if key.endswith("_x") and key[:-2] + "_y" in column
    ]


def object_segments(spec: EnvSpec) -> list[list[float]]:
    """Rods the pose describes, for the decoder to paint (LatentConfig.drawn_segments): per rod
    [x_dim, sin_dim, cos_dim, x_scale, x_offset, pivot_row, length, half_width], its pivot at
    column pose[x_dim] * x_scale + x_offset and row pivot_row, pointing along (sin, -cos), in
    render pixels. CartPole's pole, where the pose is the cart's position and the pole's angle."""
    if (
        spec.object_reader != "cartpole"
        or spec.visible_pose is None
        or spec.visible_pose.terms != ("s0", "sin2", "cos2")
    ):
        return []
    # gymnasium's renderer: a pole 10 px wide reaching 125 px from the axle, its end cap included
    return [[0, 1, 2, _CARTPOLE_PX_PER_UNIT, 300.0, _CARTPOLE_AXLE_ROW, 120.0, 5.0]]


def drawn_rows(spec: EnvSpec, text: str) -> list[list[float]]:
    """`train --drawn-rows` ("paddle_y 140 144 8, ...") -> LatentConfig.drawn_rows: per band
    [reading column, its flag column, col_low, col_high, half_height]. A ValueError names the
    readings there are."""
    if not text.strip():
        return []
    column = pose_columns(spec)
    rows = []
    for part in text.split(","):
        try:
            name, col_low, col_high, half = part.split()
            numbers = [float(col_low), float(col_high), float(half)]
        except ValueError:
            raise ValueError(
                "--drawn-rows takes 'name col_low col_high half_height', comma-separated."
            ) from None
        if name not in column:
            raise ValueError(f"--drawn-rows: {spec.name} has no reading {name!r}; it has {list(column)}.")
        rows.append([column[name], column[name] + 1, *numbers])
    return rows


def point_memory(spec: EnvSpec, text: str) -> dict:
    """`train --point-memory` ("paddle_y 126 6": the row reading that keys it, the zone's x edge
    in render pixels, the farthest key distance used; then optionally "keys=fire,rightfire,leftfire",
    actions whose press is a key column, and "path=12", the steps of a return replayed) ->
    LatentConfig.point_memory without its size; {} for "". A ValueError says what is accepted."""
    if not text.strip():
        return {}
    accepted = (
        "--point-memory takes 'row_reading x_low max_distance [keys=action,...] [path=steps]', e.g. "
        "'paddle_y 126 6' or 'paddle_y 126 6 keys=fire,rightfire,leftfire path=12'"
    )
    try:
        name, x_low, max_distance, *options = text.split()
        numbers = float(x_low), float(max_distance)
        options = dict(option.split("=", 1) for option in options)
        path_steps = int(options.pop("path", 0))
    except ValueError:
        raise ValueError(f"{accepted}; got {text!r}.") from None
    key_actions = [a for a in options.pop("keys", "").split(",") if a]
    if options or path_steps < 0:
        raise ValueError(f"{accepted}; got {text!r}.")
    column = pose_columns(spec)
    if name not in column or not object_points(spec):
        raise ValueError(
            f"--point-memory: {spec.name} needs a ball read as a point and a row reading named "
            f"{name!r}; its readings are {list(column)}."
        )
    unknown = [a for a in key_actions if a not in spec.action_names]
    if (spec.action_kind != "discrete" and key_actions) or unknown:
        raise ValueError(
            f"--point-memory keys= names discrete actions of {spec.name}: {', '.join(spec.action_names)}; "
            f"got {', '.join(unknown or key_actions)}."
        )
    memory = {"row_dim": column[name], "x_low": numbers[0], "max_distance": numbers[1]}
    if key_actions:
        memory["key_actions"] = [spec.action_names.index(a) for a in key_actions]
    if path_steps:
        memory["path_steps"] = path_steps
    return memory


def row_memory(spec: EnvSpec, text: str) -> dict:
    """`train --row-memory` ("paddle_y 4 noop,fire right,rightfire left,leftfire": the row reading
    it steps, how many of the last actions key it, then groups of actions that move the row
    alike, comma-joined; an action in no group is a group of its own) -> LatentConfig.row_memory
    without its size: {"row_dim", "actions", "groups": one group number per action}; {} for "".
    A ValueError says what is accepted."""
    if not text.strip():
        return {}
    name, count, *groups = [*text.split(), ""]
    groups = [g for g in groups if g]
    column = pose_columns(spec)
    if not count.isdigit() or not 1 <= int(count) <= 8:
        raise ValueError(
            "--row-memory takes 'row_reading actions [group ...]', e.g. "
            "'paddle_y 4 noop,fire right,rightfire left,leftfire' (actions: 1 to 8)."
        )
    if name not in column or spec.action_kind != "discrete":
        raise ValueError(
            f"--row-memory: {spec.name} needs discrete actions and a row reading named {name!r}; "
            f"its readings are {list(column)}."
        )
    names = list(spec.action_names or [str(a) for a in range(spec.num_actions)])
    group_of = list(range(len(names)))
    for number, group in enumerate(groups):
        for action in group.split(","):
            if action not in names:
                raise ValueError(f"--row-memory: {action!r} is not one of {spec.name}'s actions {names}.")
            group_of[names.index(action)] = len(names) + number  # renumbered below
    numbering = {g: i for i, g in enumerate(dict.fromkeys(group_of))}
    return {"row_dim": column[name], "actions": int(count), "groups": [numbering[g] for g in group_of]}


def object_errors(pred: dict[str, np.ndarray], true: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Absolute error per key and frame; NaN where either frame lacks the object."""
    errors = {}
    for key in true:
        diff = pred[key] - true[key]
        if key in ANGLE_KEYS:
            diff = (diff + 180) % 360 - 180
        errors[key] = np.abs(diff)
    return errors
