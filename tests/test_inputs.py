"""Start clips and action files: what people really have, read into frames and actions."""

import json

import numpy as np
import pytest

from worldsim.envs.actions import ActionError, read_action_file
from worldsim.media.images import ImageError, load_clip
from worldsim.media.video import write_video


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.txt", "right*3 left", [1, 1, 1, 0]),
        ("a.json", json.dumps(["left", 1, "right"]), [0, 1, 1]),
        ("a.csv", "left\nright\n1\n", [0, 1, 1]),
        ("header.csv", "action\nleft\n1\n", [0, 1]),
    ],
)
def test_text_action_files(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    assert read_action_file(path, "cartpole").tolist() == expected


def test_npy_and_csv_vectors_for_continuous_actions(tmp_path):
    np.save(tmp_path / "a.npy", np.array([0, 1, 1, 0]))
    assert read_action_file(tmp_path / "a.npy", "cartpole").tolist() == [0, 1, 1, 0]
    (tmp_path / "car.csv").write_text("steer,gas,brake\n0,1,0\n-1,0.5,0\n")  # a header row is skipped
    assert read_action_file(tmp_path / "car.csv", "carracing").tolist() == [[0, 1, 0], [-1, 0.5, 0]]


def test_action_files_refuse_pickles_wrong_types_and_bad_tokens(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ActionError, match="Cannot read 'obj.npy'"):
        read_action_file(tmp_path / "obj.npy", "cartpole")
    (tmp_path / "a.exe").write_text("left")
    with pytest.raises(ActionError, match=r"\.txt, \.json, \.csv, \.npy"):
        read_action_file(tmp_path / "a.exe", "cartpole")
    (tmp_path / "bad.txt").write_text("left jump")
    with pytest.raises(ActionError, match="Unknown action 'jump' at position 2"):
        read_action_file(tmp_path / "bad.txt", "cartpole")


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_a_clip_gives_its_last_frames_oldest_first(tmp_path, suffix):
    frames = np.zeros((6, 64, 160, 3), np.uint8)
    for i in range(6):
        frames[i, :, i * 20 : i * 20 + 20] = 255  # a white bar walking right, one place per frame
    path = write_video(frames, tmp_path / f"clip{suffix}", fps=10)
    last_two = load_clip(path, keep=2)
    assert len(last_two) == 2
    bright = [np.argmax(frame.mean(axis=(0, 2)) > 128) for frame in last_two]  # first white column
    assert bright[0] < bright[1]  # oldest first: the bar moved right
    assert bright[1] == pytest.approx(5 * 20 * last_two[1].shape[1] / 160, abs=4)


def test_a_clip_that_is_not_a_clip_is_refused(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"not a video")
    with pytest.raises(ImageError, match="Cannot read 'x.mp4' as a video clip"):
        load_clip(tmp_path / "x.mp4", keep=2)
    with pytest.raises(ImageError, match="Clips must be"):
        load_clip(tmp_path / "x.txt", keep=2)
