"""Action text: what people type to drive a world model.

Syntax (one action = one environment step):
- tokens separated by spaces and/or commas: ``right right left`` or ``1, 1, 0``;
- a token is an action name (case-insensitive) or an index for discrete actions, a number for a
  one-dimensional continuous action, or ``[a,b,c]`` for a multi-dimensional one;
- ``TOKEN*N`` repeats a token N times: ``right*5 left*5``, ``[0,1,0]*20``;
- a JSON list is accepted too: ``["left", "right"]``, ``[0, 1, 1]``, ``[[0, 1, 0], [-1, 0, 0]]``.

    >>> parse_actions("right*2, left", get_spec("cartpole")).tolist()
    [1, 1, 0]
    >>> format_actions([1, 1, 0], get_spec("cartpole"))
    'right*2 left'
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from worldsim.envs.builtin import get_spec
from worldsim.envs.spec import EnvSpec

MAX_STEPS = 1000  # longest sequence parse_actions accepts unless told otherwise
MAX_TEXT_CHARS = 20_000  # longer text is refused before any parsing work
ACTION_FILE_TYPES = (".txt", ".json", ".csv", ".npy")
MAX_ACTION_FILE_BYTES = 1_000_000

# A token is a bracketed vector or a run of anything but separators, optionally followed by *N.
_SEPARATORS = re.compile(r"[\s,]*")
_TOKEN = re.compile(r"(\[[^\]]*\]|[^\s,\[\]*]+)\s*(?:\*\s*([^\s,\[\]]*))?")


class ActionError(ValueError):
    """Action text that cannot be read; the message names the token and what is accepted."""


def accepted_actions(spec: EnvSpec) -> str:
    """One line describing what this environment's action text accepts."""
    if spec.action_kind == "discrete":
        names = ", ".join(f"{name} ({i})" for i, name in enumerate(spec.action_names))
        return f"{spec.name} actions are names or indices: {names}"
    bounds = ", ".join(
        f"{label} in [{lo:g}, {hi:g}]"
        for label, lo, hi in zip(spec.action_labels, spec.action_low, spec.action_high, strict=True)
    )
    shape = "a number" if spec.action_dim == 1 else f"[{', '.join(spec.action_labels)}]"
    return f"{spec.name} actions are {shape} with {bounds}"


def parse_actions(text: str | Sequence, spec: EnvSpec | str, max_steps: int = MAX_STEPS) -> np.ndarray:
    """Action text (or a sequence of actions) -> int64 (T,) for discrete, float32 (T, D) continuous.

    Raises ActionError naming the bad token, its position and the accepted actions, or the limit.
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    items = _items(text, spec)
    actions: list = []
    for position, (token, repeat) in enumerate(items, start=1):
        action = _read_action(token, spec, position)
        if len(actions) + repeat > max_steps:
            raise ActionError(
                f"Too many actions: at most {max_steps} steps are accepted "
                f"(token {position} {_show(token)} takes the total past that)."
            )
        actions.extend([action] * repeat)
    if not actions:
        raise ActionError(f"No actions given. {accepted_actions(spec)}; e.g. {spec.example_actions!r}.")
    if spec.action_kind == "discrete":
        return np.asarray(actions, dtype=np.int64)
    return np.asarray(actions, dtype=np.float32).reshape(len(actions), spec.action_dim)


def format_actions(actions: Sequence | np.ndarray, spec: EnvSpec | str) -> str:
    """Actions -> compact text that `parse_actions` reads back to the same actions."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    tokens = [_format_one(action, spec) for action in np.asarray(actions).tolist()]
    runs: list[tuple[str, int]] = []
    for token in tokens:
        if runs and runs[-1][0] == token:
            runs[-1] = (token, runs[-1][1] + 1)
        else:
            runs.append((token, 1))
    return " ".join(token if count == 1 else f"{token}*{count}" for token, count in runs)


def _items(text: str | Sequence, spec: EnvSpec) -> list[tuple[object, int]]:
    """Split the input into (token, repeat count) pairs without expanding repeats yet."""
    if not isinstance(text, str):
        if isinstance(text, np.ndarray) and spec.action_kind == "continuous" and text.ndim == 2:
            return [(list(row), 1) for row in text.tolist()]
        return [(item, 1) for item in np.asarray(text, dtype=object).tolist()]
    if len(text) > MAX_TEXT_CHARS:
        raise ActionError(
            f"Action text is {len(text):,} characters; at most {MAX_TEXT_CHARS:,} are accepted "
            "(use TOKEN*N to repeat)."
        )
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            loaded = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):
            loaded = None
        if isinstance(loaded, list):
            is_one_vector = (
                spec.action_kind == "continuous"
                and spec.action_dim > 1
                and all(_is_number(v) for v in loaded)
            )
            return [(loaded, 1)] if is_one_vector else [(item, 1) for item in loaded]
    items = []
    position = 0
    while True:
        position = _SEPARATORS.match(stripped, position).end()
        if position == len(stripped):
            break
        match = _TOKEN.match(stripped, position)
        if match is None:
            bad = stripped[position:].split()[0] if stripped[position:].split() else stripped[position:]
            raise ActionError(
                f"Cannot read {bad!r} at character {position + 1}. {accepted_actions(spec)}; "
                "separate tokens with spaces or commas, repeat with TOKEN*N."
            )
        token, count_text = match.group(1), match.group(2)
        items.append((token, _repeat_count(token, count_text, len(items) + 1)))
        position = match.end()
    return items


def _repeat_count(token: str, count_text: str | None, position: int) -> int:
    if count_text is None:
        return 1
    digits = count_text.lstrip("0")
    # ASCII digits only: str.isdigit also takes '²', which int() refuses.
    if not re.fullmatch(r"[0-9]+", count_text) or not digits:
        raise ActionError(
            f"Token {position} {token}*{count_text}: the repeat count must be a whole number >= 1, "
            f"as in {token}*5."
        )
    # Bounded (and never a 5000-digit int()) so that huge counts fail on length, fast.
    return MAX_STEPS * 1000 if len(digits) > 9 else min(int(digits), MAX_STEPS * 1000)


def _read_action(token: object, spec: EnvSpec, position: int):
    """One token -> int action index (discrete) or list of floats (continuous)."""
    if spec.action_kind == "discrete":
        return _read_discrete(token, spec, position)
    return _read_continuous(token, spec, position)


def _read_discrete(token: object, spec: EnvSpec, position: int) -> int:
    if isinstance(token, str):
        name = token.strip().lower()
        if name in spec.action_names:
            return spec.action_names.index(name)
        if re.fullmatch(r"[+-]?[0-9]{1,9}", name):  # longer numbers are no index either
            token = int(name)
    is_index = isinstance(token, int | np.integer) and not isinstance(token, bool)
    if is_index and 0 <= token < len(spec.action_names):
        return int(token)
    raise ActionError(f"Unknown action {_show(token)} at position {position}. {accepted_actions(spec)}.")


def _read_continuous(token: object, spec: EnvSpec, position: int) -> list[float]:
    values = token
    if isinstance(token, str):
        text = token.strip()
        try:
            values = json.loads(text) if text.startswith("[") else float(text)
        except ValueError:
            raise ActionError(
                f"Cannot read action {_show(token)} at position {position}. {accepted_actions(spec)}."
            ) from None
    if _is_number(values):
        values = [values]
    if not isinstance(values, list) or not all(_is_number(v) for v in values):
        raise ActionError(
            f"Cannot read action {_show(token)} at position {position}. {accepted_actions(spec)}."
        )
    if len(values) != spec.action_dim:
        raise ActionError(
            f"Action {_show(token)} at position {position} has {len(values)} value(s); "
            f"{spec.name} takes {spec.action_dim}. {accepted_actions(spec)}."
        )
    floats = [float(v) for v in values]
    for value, label, lo, hi in zip(
        floats, spec.action_labels, spec.action_low, spec.action_high, strict=True
    ):
        if not math.isfinite(value) or not lo <= value <= hi:
            raise ActionError(
                f"Action {_show(token)} at position {position}: {label}={value:g} is outside "
                f"[{lo:g}, {hi:g}]. {accepted_actions(spec)}."
            )
    return floats


def _format_one(action, spec: EnvSpec) -> str:
    if spec.action_kind == "discrete":
        return spec.action_names[int(action)]
    values = action if isinstance(action, list) else [action]
    numbers = ",".join(_shortest(np.float32(v)) for v in values)
    return numbers if spec.action_dim == 1 else f"[{numbers}]"


def _shortest(value: np.float32) -> str:
    """Continuous actions are float32: the shortest text that reads back to the same float32
    ("-0.6", where repr of the float64 it widens to says "-0.6000000238418579"; "1e-45", not 47
    digits)."""
    texts = (np.format_float_positional(value, trim="-"), np.format_float_scientific(value, trim="-"))
    return min(texts, key=len)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _show(token: object) -> str:
    text = token if isinstance(token, str) else json.dumps(token, default=str)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def read_action_file(path: str | Path, spec: EnvSpec | str, max_steps: int = MAX_STEPS) -> np.ndarray:
    """Actions from a file: .txt (action text), .json (a list), .csv (one action per row: a name,
    an index, or the values of a continuous action) or .npy (an int (T,) or float (T, D) array;
    read without pickle). Raises ActionError saying what was wrong and what is accepted."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ACTION_FILE_TYPES:
        raise ActionError(f"Action files must be {', '.join(ACTION_FILE_TYPES)}; got {path.name!r}.")
    size = path.stat().st_size
    if size > MAX_ACTION_FILE_BYTES:
        raise ActionError(f"Action file is {size:,} bytes; at most {MAX_ACTION_FILE_BYTES:,} are accepted.")
    try:
        if suffix == ".npy":
            return parse_actions(np.load(path, allow_pickle=False), spec, max_steps)
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, ValueError) as error:  # not UTF-8, not an .npy, or a pickled object array
        raise ActionError(f"Cannot read {path.name!r} as a {suffix} action file: {error}") from None
    if suffix == ".csv":
        rows = [[cell.strip() for cell in row if cell.strip()] for row in csv.reader(io.StringIO(text))]
        rows = [row for row in rows if row]
        try:
            return _parse_csv_rows(rows, spec, max_steps)
        except ActionError:
            if len(rows) < 2:
                raise
            try:  # a header row ("action" or "steer,gas,brake")?
                return _parse_csv_rows(rows[1:], spec, max_steps)
            except ActionError:
                pass
            raise
    if suffix == ".json" and not text.strip().startswith("["):
        raise ActionError(f'{path.name!r}: a .json action file holds a list, e.g. ["left", "right"].')
    return parse_actions(text, spec, max_steps)


def _parse_csv_rows(rows: list[list[str]], spec: EnvSpec, max_steps: int) -> np.ndarray:
    if spec.action_kind == "continuous" and spec.action_dim > 1:
        return parse_actions(" ".join(f"[{','.join(row)}]" for row in rows), spec, max_steps)
    return parse_actions(" ".join(cell for row in rows for cell in row), spec, max_steps)
