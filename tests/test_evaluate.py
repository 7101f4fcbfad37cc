"""The evaluation's verdicts, on metrics whose answer is known."""

import numpy as np
import pytest

from worldsim.envs.builtin import get_spec
from worldsim.evaluation.evaluate import check_bars, evaluation_starts
from worldsim.rollout import imagine


def _metrics(model: list[float], copy: list[float], edge: float = 1.0, found: float | None = 1.0) -> dict:
    m = {"psnr": model, "psnr_copy": copy, "edge_ratio": [edge] * len(model)}
    if found is not None:
        m["objects_found"] = [found] * len(model)
    return m


def test_bars_pass_a_model_well_above_copy_everywhere():
    lines = check_bars({"random": _metrics([100.0] + [40.0] * 12, [100.0] + [30.0] * 12)})
    assert all(line.startswith("PASS") for line in lines) and len(lines) == 4


def test_bars_name_the_horizons_below_copy_and_a_fading_model():
    model = [100.0, 30.0, 31.0] + [40.0] * 10
    copy = [100.0, 35.0, 30.0] + [38.0] * 10  # h=1 below copy, h=5 and 10 only +2
    lines = check_bars({"random": _metrics(model, copy, edge=0.3, found=0.5)})
    assert "FAIL random h=5: PSNR +2.00 dB" in lines[0]
    assert "FAIL random h=1..10: model above copy at every horizon (not at h=1)" in lines[2]
    assert lines[3].startswith("FAIL random h=12: no collapse, edge ratio 0.30")
    assert "objects found in 50%" in lines[3]


def test_no_object_in_view_is_not_counted_as_lost():
    lines = check_bars({"random": _metrics([100.0] + [40.0] * 12, [100.0] + [30.0] * 12, found=np.nan)})
    assert lines[3].startswith("PASS") and "objects found" not in lines[3]


def test_pong_and_carracing_are_also_measured_after_their_warm_up():
    assert evaluation_starts(get_spec("cartpole"), 2) == [("", 0, 1)]
    assert evaluation_starts(get_spec("pong"), 2) == [("", 0, 1), (" @50", 50, 2)]
    assert evaluation_starts(get_spec("carracing"), 2)[1][1] == 50


def test_redraw_measures_the_drawing_apart_from_the_dynamics():
    import worldsim
    from worldsim.evaluation.evaluate import format_table, per_step_metrics, simulate

    model = worldsim.load("cartpole")
    spec = model.spec
    frames, actions = simulate(spec, 5000, "random", 8)
    true = frames[None]
    redrawn = model.redraw(true)
    assert redrawn.shape == true.shape and np.array_equal(redrawn[:, 0], true[:, 0])
    metrics = per_step_metrics(imagine(model, true[:, :1], actions[None]).frames, true, spec, redrawn)
    # The shipped decoder draws the true frames at over 40 dB: better than its rollout from h=2 on.
    assert (metrics["psnr_redraw"][1:] > 40).all()
    assert (metrics["psnr_redraw"][2:] > metrics["psnr"][2:]).all()
    table = format_table({"random": {k: v.tolist() for k, v in metrics.items()}}, [1, 5], spec, 1)
    assert "PSNR redraw" in table.splitlines()[2]


@pytest.mark.slow  # a collection and a training
def test_updating_the_card_records_metrics_and_leaves_the_weights_byte_identical(tiny_checkpoint, tmp_path):
    import json
    import shutil

    from worldsim.evaluation.evaluate import evaluate_model

    folder = shutil.copytree(tiny_checkpoint, tmp_path / "tiny")
    weights = (folder / "model.safetensors").read_bytes()
    metrics = evaluate_model(str(folder), episodes=2, horizon=5, out=tmp_path / "docs", update_card=True)
    assert (folder / "model.safetensors").read_bytes() == weights
    assert json.loads((folder / "metrics.json").read_text())["markdown"] == metrics["markdown"]
    assert metrics["markdown"] in (folder / "README.md").read_text()
