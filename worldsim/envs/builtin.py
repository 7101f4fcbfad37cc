"""The eight environments worldsim ships models of, as data.

Each is an `EnvSpec` literal (the comments say why a field has its value); a checkpoint stores its
spec in config.json, so loading a model never looks here. `collect --env NAME` and `train --env
NAME` start from these; `--env-id <gymnasium id>` derives a spec for any other environment
(`worldsim.envs.spec.derive_spec`).
"""

from __future__ import annotations

from worldsim.envs.spec import Crop, EnvSpec, StateFeatures

# Training for envs whose rollouts start from a reset frame, as evaluation and most uploads do: one
# frame cannot show velocity, and dynamics trained on single frames from anywhere in an episode
# learn the velocity seen there on average (mid-episode, a leaning pole is usually falling).
# Single-frame windows start at episode starts instead, where the velocity is a reset's (at rest
# for CartPole, Acrobot and MountainCar, uniform in +-1 rad/s for Pendulum); and every horizon
# counts alike (docs/experiments.md has what it changed).
FROM_RESET = {"single_frame_at_reset": True, "log_step_loss": True}

# Pong's and Breakout's ball, a 1x2-pixel object a mean pixel loss ignores (docs/experiments.md,
# issue 15, sessions 9 and 13): painted where its latent coordinates say; read by an encoder exact
# to 0.3 px (0.6 without the pose weight); moving on at its own motion, which the GRU changes only
# at a bounce, without hedging between bounce and not (Huber); snapped in flight to the speeds it
# keeps in the data (from two encoded frames its speed is a fraction of a pixel off, a few pixels
# after ten steps); and the next speed picked as a class, so that where a bounce may or may not
# come the dream takes one future instead of averaging them.
BALL_AS_POINT = {
    "object_points": True,
    "pose_point_weight": 30.0,
    "point_weight": 10.0,
    "point_momentum": True,
    "point_huber": 1.0,
    "snap_speeds": True,
    "speed_classes": True,
}


ENV_SPECS: dict[str, EnvSpec] = {
    spec.name: spec
    for spec in [
        EnvSpec(
            name="cartpole",
            object_reader="cartpole",
            gym_id="CartPole-v1",
            action_kind="discrete",
            action_names=("left", "right"),
            fps=50,  # tau = 0.02 s per step
            # Rows 160..400 of the 400x600 render hold the cart, the upright pole (top at row 172)
            # and a pole fallen below the track; full width is the whole track. 240x600 -> 64x160
            # keeps the aspect ratio: 1 track unit = 33 px, so a moving cart shifts visibly.
            crop=Crop(top=0.4, bottom=1.0),
            height=64,
            width=160,
            state_source="attr:state",
            visible_pose=StateFeatures(("s0", "sin2", "cos2")),  # cart position, pole angle
            dynamics_state=StateFeatures(
                ("s0", "s1", "sin2", "cos2", "s3")
            ),  # x, x velocity, angle, angular velocity
            steps_after_termination=40,
            collect_policies=(("random", 0.35), ("sticky", 0.15), ("balance", 0.5)),
            # Most windows from resets (what users start from), and the pixels stage decoding from
            # the whole unroll, so the decoder keeps drawing far frames (docs/experiments.md).
            # 4000 autoencoder steps rather than 5000 fit the whole recipe in 45 minutes on two
            # cores and measured the same in evaluation.
            train_defaults={
                **FROM_RESET,
                "autoencoder_steps": 4000,
                "single_frame_share": 0.8,
                "pixel_steps": 1500,
                "pixel_horizon": 40,
            },
            example_actions="right*10 left*10 right*10",
            play_keys={"left": "left", "right": "right"},
        ),
        EnvSpec(
            name="acrobot",
            gym_id="Acrobot-v1",
            action_kind="discrete",
            action_names=("left", "none", "right"),  # torque -1, 0, +1 on the joint
            fps=15,
            render_size=(500, 500),
            height=64,
            width=64,
            state_source="attr:state",
            visible_pose=StateFeatures(("sin0", "sin1", "cos0", "cos1")),
            dynamics_state=StateFeatures(("sin0", "cos0", "sin1", "cos1", "s2", "s3")),  # angles, velocities
            collect_episodes=200,  # most run the full 500 steps
            collect_policies=(("random", 0.5), ("sticky", 0.5)),
            train_defaults=FROM_RESET,
            example_actions="left*10 right*10 left*10",
            play_keys={"left": "left", "right": "right", "space": "none"},
        ),
        EnvSpec(
            name="pendulum",
            object_reader="pendulum",
            gym_id="Pendulum-v1",
            action_kind="continuous",
            action_low=(-2.0,),
            action_high=(2.0,),
            action_labels=("torque",),
            fps=20,
            render_size=(500, 500),
            crop=Crop(top=0.2, bottom=0.8, left=0.2, right=0.8),  # the rod (113 px) and its pivot
            height=64,
            width=64,
            state_source="attr:state",
            visible_pose=StateFeatures(("sin0", "cos0")),
            dynamics_state=StateFeatures(("sin0", "cos0", "s1")),  # angle and angular velocity
            collect_policies=(("random", 0.5), ("sticky", 0.5)),
            # From one frame the velocity is unknown: a GRU averaged the futures into a blur, while state
            # dynamics keep a sharp rod and sample the velocity (docs/eval_pendulum.md).
            train_defaults={
                "autoencoder_steps": 3000,
                "dynamics_steps": 4000,
                "dynamics": "state",
                **FROM_RESET,
                # the torque arrow is drawn from the action: state dynamics carry no action
                "decoder_action": True,
            },
            example_actions="2*10 -2*10 0*10",
            play_keys={"left": "2", "right": "-2", "space": "0"},  # +torque turns anticlockwise
        ),
        EnvSpec(
            name="mountaincar",
            gym_id="MountainCar-v0",
            action_kind="discrete",
            action_names=("left", "none", "right"),
            fps=30,
            height=64,
            width=96,
            state_source="attr:state",
            visible_pose=StateFeatures(("s0",)),
            dynamics_state=StateFeatures(("s0", "s1")),  # position and velocity
            collect_policies=(("random", 0.3), ("sticky", 0.7)),  # held pushes climb the hills
            train_defaults={**FROM_RESET, "pixel_steps": 1500},
            example_actions="left*20 right*40",
            play_keys={"left": "left", "right": "right", "space": "none"},
        ),
        EnvSpec(
            name="breakout",
            object_reader="breakout",
            gym_id="ALE/Breakout-v5",
            action_kind="discrete",
            action_names=("noop", "fire", "right", "left"),
            make_kwargs={"repeat_action_probability": 0.0, "frameskip": 4},
            modules=("ale_py",),
            fps=15,
            render_size=(210, 160),
            # The playfield: top wall to below the paddle, side walls trimmed (the score is left
            # out). 163x144 -> 96x80 keeps the 2x4 px ball at about 1x2 px.
            crop=Crop(top=0.15, bottom=0.93, left=0.05, right=0.95),
            height=96,
            width=80,
            collect_episodes=500,  # random play loses its 5 lives in ~180 steps
            train_defaults={
                "autoencoder_steps": 3000,
                "dynamics_steps": 4000,
                "colour_weight": 0.2,
                "frame_poses": True,
                "pixel_steps": 1500,
                "pixel_horizon": 40,
                **BALL_AS_POINT,
            },
            example_actions="fire right*10 left*10",
            play_keys={"left": "left", "right": "right", "space": "fire", "down": "noop"},
        ),
        EnvSpec(
            name="pong",
            object_reader="pong",
            gym_id="ALE/Pong-v5",
            action_kind="discrete",
            action_names=("noop", "fire", "right", "left", "rightfire", "leftfire"),
            make_kwargs={"repeat_action_probability": 0.0, "frameskip": 4},
            modules=("ale_py",),
            fps=15,
            render_size=(210, 160),
            # Between the white bars above and below the court, rows 34-193 (the score is left
            # out): 160x160 -> 80x80 keeps the 2x4 px ball at 1x2 px.
            crop=Crop(top=0.162, bottom=0.922),
            height=80,
            width=80,
            warmup_steps=50,  # the reset screen has no court yet: also start from a frame in play
            collect_episodes=100,  # random play loses 21-0 in ~850 steps
            train_defaults={
                "autoencoder_steps": 3000,
                "dynamics_steps": 4000,
                "colour_weight": 0.2,
                "frame_poses": True,
                **BALL_AS_POINT,
                # Half the windows then draw one context frame rather than three quarters: from
                # one frame the GRU learns an average serve, and it sped real ones up.
                "single_frame_share": 0.0,
                "steady_share": 0.004,  # the ball's 12 pixels a step after a hard return
                # The paddles placed to 0.4 px by the encoder (their rows weighted like the ball's
                # coordinates, the in-view flags' spread floored) and painted as bands where the
                # latent puts them: the decoder had drawn them from the latent's other dims, and a
                # held key moved the dream's paddle the simulator's way in 80% of moves, now 98%.
                "pose_reading_weight": 30.0,
                "flag_spread_floor": 0.5,
                "drawn_rows": "paddle_y 140 144 8, opponent_y 16 20 8",
                # The paddle moves as a filter of the last few keys, which frames do not show: given
                # the four keys played into the start (a simulator's start knows them), a held key
                # moved the dream's paddle the simulator's way in 97% of moves on unseen seeds
                # (89% without them; docs/experiments.md).
                "past_actions": 4,
                # At the player's side of the court (ball x >= 126) the ball moves as the nearest
                # step of the training data did: the GRU's speed head never learnt a return, and
                # ball recall after 50 random steps rose 0.70 -> 0.75 (docs/experiments.md). The
                # fire button is in its key (it sets a return's speed where frames leave it open),
                # a return's next 12 steps are replayed, and it also holds 10,000 first serves
                # (`collect --branch "52 50 12"` into data/pong_serves): random keys return the
                # first serve one time in seven, by a pixel of the paddle, and 100 games hold ~15.
                # Recall on 100 of eval's seeds 0.78 -> 0.85 (docs/experiments.md, session 27).
                "point_memory": "paddle_y 126 6 keys=fire,rightfire,leftfire path=12",
                "memory_data": "data/pong_serves",
                # The paddle's row stepped by a table of the training data (its last move and place,
                # the last four keys, fire or not alike): the GRU's row drifted 5-17 px in 60 random
                # steps, and the ball met a paddle the simulator's was not (docs/experiments.md).
                "row_memory": "paddle_y 4 noop,fire right,rightfire left,leftfire",
                # No pixels stage: +1.4 dB at h=5 after 50 steps, but it blurs the paddles (a held
                # key moved the paddle the simulator's way in 34% of tries, against 97%) and the
                # ball (docs/experiments.md)
            },
            example_actions="noop*10 right*10 left*10",
            # Pong's "right" moves the paddle up the screen, "left" down.
            play_keys={"up": "right", "down": "left", "space": "noop"},
        ),
        EnvSpec(
            name="carracing",
            object_reader="carracing",
            gym_id="CarRacing-v3",
            action_kind="continuous",
            action_low=(-1.0, 0.0, 0.0),
            action_high=(1.0, 1.0, 1.0),
            action_labels=("steer", "gas", "brake"),
            fps=50,
            # The 96x96 top-down view the agent sees (World Models' input). It is the same picture
            # as the 600x400 window, scaled from one 1000x800 canvas, so either screenshot works;
            # rendering it is 2x cheaper than the window.
            render_mode="state_pixels",
            render_size=(96, 96),
            height=64,
            width=64,
            warmup_steps=50,  # the reset view zooms in from the whole track for ~50 steps
            collect_policies=(("drive", 0.8), ("sticky", 0.2)),
            collect_episodes=200,
            episode_steps=300,  # shorter episodes, more tracks: 200 tracks in 60k frames
            train_defaults={
                "autoencoder_steps": 3000,
                "dynamics_steps": 4000,
                "colour_weight": 0.2,
                # decoding from the whole unroll keeps the road drawn at h=60 from the reset zoom
                "pixel_steps": 1500,
                "pixel_horizon": 40,
                # The road and grass scroll and turn under the car: moving the start frame's
                # texture into place beats redrawing it from 32 numbers, +3.7 / +3.3 dB at h=5 /
                # h=10 after 50 steps of random actions (docs/experiments.md, session 12).
                "warp_reference": True,
                # ... by a flow relative to the one drawn for the start frame itself, so a stopped
                # car's view stays exactly in place (docs/experiments.md, session 15).
                "relative_flow": True,
                # Drawing the action (the bars under the road show steering, gas and brake) was
                # tried: +0.2-0.3 dB at h=1..10, 1-2 dB less at h=30-60 (docs/experiments.md).
            },
            example_actions="[0,1,0]*20 [-1,0.5,0]*10",
            play_keys={
                "left": "[-1,0.3,0]",
                "right": "[1,0.3,0]",
                "up": "[0,1,0]",
                "down": "[0,0,0.8]",
                "space": "[0,0,0]",
            },
        ),
    ]
}


def get_spec(name: str) -> EnvSpec:
    """The built-in spec called `name` (case-insensitive); a clear error listing the names otherwise."""
    key = name.strip().lower()
    if key not in ENV_SPECS:
        raise KeyError(
            f"Unknown environment {name!r}. Built in: {', '.join(sorted(ENV_SPECS))}; "
            "any other gymnasium environment works by its id (--env-id), e.g. Acrobot-v1."
        )
    return ENV_SPECS[key]
