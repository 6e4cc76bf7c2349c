"""The load pipeline: a scenario file read within its limits, decoded with a path in every error,
checked, its replays read and its tune candidates laid over the tuned rollout.

``load`` reads the file (a regular file of at most ``MAX_FILE_BYTES``), refuses keys and nesting
past the limits before and after ``tomllib`` parses it, decodes it into the schema
(``edge.scenario.schema``) rewriting msgspec's errors into ``ConfigError``s that name the path
inside the file and what was expected (with "did you mean" for a misspelt field), reads each
replayed log, runs the checks that span tables (``edge.scenario.checks``), and returns a
``LoadedScenario``, resolved once (``edge.scenario.resolved``).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from edge.platform.files import InputError, read_input
from edge.scenario.checks import run_checks
from edge.scenario.errors import ConfigError
from edge.scenario.replay import MAX_REPLAY_BYTES, Replay, ReplayError, format_of, parse as parse_replay
from edge.scenario.resolved import LoadedScenario
from edge.scenario.schema import MAX_DEPTH, MAX_ENVIRONMENTS, MAX_FILE_BYTES, Rollout, Scenario, tuned_service
from edge.scenario.values import FieldError, dec_hook, enc_hook

_MSGSPEC_ERROR = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def load(path: str | Path) -> LoadedScenario:
    return loads(_read(path), file=str(path), base_dir=str(Path(path).parent))


def _read(path: str | Path) -> bytes:
    try:
        return read_input(path, MAX_FILE_BYTES)
    except InputError as exc:
        raise ConfigError(str(path), "", str(exc)) from None


def loads(data: bytes | str, *, file: str, base_dir: str) -> LoadedScenario:
    data = data if isinstance(data, bytes) else data.encode()
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(file, "", f"expected a scenario of at most {MAX_FILE_BYTES:,} bytes (8 MiB), got more")
    _check_key_lengths(data, file)
    try:
        raw = tomllib.loads(data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    except RecursionError:  # arrays or inline tables nested hundreds deep: tomllib recurses per level
        raise ConfigError(file, "", f"expected tables and arrays nested at most {MAX_DEPTH} deep, got far deeper") from None
    _check_depth(raw, file)
    spec = convert(raw, Scenario, file)
    # Counted before resolving, which would build every one of them (a service with none has one).
    environments = sum(len(s.environments) or 1 for s in spec.services)
    if environments > MAX_ENVIRONMENTS:
        raise ConfigError(file, "services", f"expected at most {MAX_ENVIRONMENTS:,} environments in all, got {environments:,}")
    loaded = LoadedScenario(spec=spec, file=file, base_dir=base_dir)
    loaded.replays = {i: _read_replay(loaded, i, group.replay) for i, group in enumerate(spec.traffic) if group.replay is not None}
    run_checks(loaded)  # after the replays: a looped one's rate is checked
    if spec.tune is not None:
        loaded.candidates = [
            candidate_rollout(loaded, candidate, f"tune.candidates[{i}]") for i, candidate in enumerate(spec.tune.candidates)
        ]
    return loaded


def _read_replay(loaded: LoadedScenario, index: int, name: str) -> Replay:
    """A replay file, relative to the scenario; an error names it and its line (``file:LINE``)."""
    group = loaded.spec.traffic[index]
    path = Path(loaded.base_dir) / name
    at = f"traffic[{index}].replay"
    try:
        data = read_input(path, MAX_REPLAY_BYTES)
    except InputError as exc:
        raise ConfigError(loaded.file, at, f"{path}: {exc}") from None
    try:
        replay = parse_replay(data, file=name, format=format_of(name, group.replay_format), on_error=group.on_error)
    except ReplayError as exc:
        place = exc.where.removeprefix("line ") if exc.where.startswith("line ") else exc.where
        raise ConfigError(loaded.file, at, f"{path}:{place}: {exc.expected}") from None
    if group.loop and replay.span <= 0:
        raise ConfigError(loaded.file, f"traffic[{index}].loop", f"{path}: a loop needs requests at more than one time, all are at one instant")
    return replay


MAX_KEY_PARTS = 1_000
"""tomllib's cost grows with the square of a dotted key's length (``a.b.c...``): 100k parts run
the machine out of memory. Past the depth limit anyway; this bound only keeps the parser's cost
small before ``_check_depth`` says so."""
_KEY_PART = re.compile(rb"""(?<![\w-])(?:[\w-]++|"[^"\n]*+"|'[^'\n]*+')[ \t]*+\.[ \t]*+""")


def _check_key_lengths(data: bytes, file: str) -> None:
    """Refuse a dotted key of more than ``MAX_KEY_PARTS`` parts before tomllib sees it: one
    linear pass over lines with that many dots (a part is a bare or quoted key and its dot)."""
    for number, line in enumerate(data.split(b"\n"), 1):
        if line.count(b".") < MAX_KEY_PARTS:
            continue
        run, end = 0, -1
        for part in _KEY_PART.finditer(line):
            run = run + 1 if part.start() == end else 1
            end = part.end()
            if run >= MAX_KEY_PARTS:
                raise ConfigError(file, f"line {number}", f"expected tables and arrays nested at most {MAX_DEPTH} deep, "
                                  f"got a dotted key of {MAX_KEY_PARTS:,} parts or more")


def _check_depth(raw: dict[str, Any], file: str) -> None:
    """Tables and arrays at most ``MAX_DEPTH`` deep (a walk with its own stack: no recursion)."""
    stack: list[tuple[Any, str, int]] = [(raw, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict):
            children = ((_join(path, str(k)), v) for k, v in value.items())
        elif isinstance(value, list):
            children = ((f"{path}[{i}]", v) for i, v in enumerate(value))
        else:
            continue
        if depth > MAX_DEPTH:
            raise ConfigError(file, path, f"expected tables and arrays nested at most {MAX_DEPTH} deep")
        stack.extend((child, child_path, depth + 1) for child_path, child in children)


def convert(raw: Any, type: Any, file: str, at: str = "") -> Any:
    """``msgspec.convert`` with the scenario's typed values, a failure raised as a ConfigError
    naming the path (under ``at``)."""
    try:
        return msgspec.convert(raw, type=type, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        match = _MSGSPEC_ERROR.match(str(exc))
        assert match is not None  # the pattern accepts any text
        path = _name_dict_keys(raw, match.group("path") or "", str(exc))
        message = _TOO_LONG.sub(lambda m: f"expected at most {int(m.group(1)):,} entries", _lower_first(match.group("msg")))
        unknown = _UNKNOWN_FIELD.match(message)
        if unknown is not None:
            message += _did_you_mean(unknown.group(1), _fields_at(type, path))
        field = exc.__cause__.field if isinstance(exc.__cause__, FieldError) else ""  # a __post_init__ names the field it refused
        raise ConfigError(file, _join(_join(at, _dotted(path)), field), message) from None


_UNKNOWN_FIELD = re.compile(r"^object contains unknown field `([^`]*)`$")


def _fields_at(type: Any, path: str) -> list[str]:
    """The field names of the struct found at ``path`` (msgspec's, e.g. ``.traffic[0]``) inside
    ``type``, read from ``msgspec.inspect``; [] where the path leads to no struct."""
    node: msgspec.inspect.Type | None = msgspec.inspect.type_info(type)
    for name, index in ((m.group(1), m.group(2)) for m in _SEGMENT.finditer(path)):
        node = _struct_in(node)
        if name is not None and isinstance(node, msgspec.inspect.StructType):
            node = next((f.type for f in node.fields if f.encode_name == name), None)
        elif isinstance(node, (msgspec.inspect.ListType, msgspec.inspect.DictType)):
            node = node.item_type if index is not None and isinstance(node, msgspec.inspect.ListType) else getattr(node, "value_type", None)
        else:
            return []
    node = _struct_in(node)
    return [f.encode_name for f in node.fields] if isinstance(node, msgspec.inspect.StructType) else []


def _struct_in(node: Any) -> Any:
    """The struct, list or table a union stands for (``T | None``, ``float | Step``); the node
    itself otherwise."""
    if isinstance(node, msgspec.inspect.UnionType):
        kinds = (msgspec.inspect.StructType, msgspec.inspect.ListType, msgspec.inspect.DictType)
        return next((t for t in node.types if isinstance(t, kinds)), node)
    return node


def _did_you_mean(name: str, fields: list[str]) -> str:
    """" (did you mean `x`?)" for the field closest to a misspelt ``name`` (difflib), then the
    fields expected; "" when the struct is unknown."""
    if not fields:
        return ""
    close = difflib.get_close_matches(name, fields, n=1)
    return (f" (did you mean `{close[0]}`?)" if close else "") + f"; expected one of {', '.join(fields)}"


_TOO_LONG = re.compile(r"^expected `(?:array|object)` of length <= (\d+)$")


SCHEDULE_FIELDS = ("steps", "step_weight", "max_weight", "interval")
"""A tune candidate's schedule replaces these of the tuned rollout, all together."""


def candidate_rollout(loaded: LoadedScenario, schedule: dict[str, Any], at: str) -> Rollout:
    """The tuned service's rollout with ``schedule`` (and any other settings it has) laid over it."""
    base = msgspec.to_builtins(tuned_service(loaded.spec).rollout, enc_hook=enc_hook)
    for field in SCHEDULE_FIELDS:
        base.pop(field, None)
    rollout: Rollout = convert({**base, **schedule}, Rollout, loaded.file, at)
    return rollout


_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")


def _name_dict_keys(raw: Any, path: str, message: str) -> str:
    """Replace msgspec's ``[...]`` (a dict key it does not name) with the key that fails.

    Each candidate key is tried alone: the one whose value reproduces the error is the culprit.
    Only runs on the error path, so the repeated conversions cost nothing that matters.
    """
    while "[...]" in path:
        head, _, tail = path.partition("[...]")
        container = raw
        for name, index in ((m.group(1), m.group(2)) for m in _SEGMENT.finditer(head)):
            container = container[name] if name is not None else container[int(index)]
        for key in list(container):
            trimmed = {key: container[key]}
            saved = dict(container)
            container.clear()
            container.update(trimmed)
            try:
                msgspec.convert(raw, type=Scenario, dec_hook=dec_hook)
                same = False
            except msgspec.ValidationError as exc:
                same = str(exc) == message
            finally:
                container.clear()
                container.update(saved)
            if same:
                path = f"{head}.{key}{tail}"
                message = message.replace("[...]", f".{key}", 1)
                break
        else:
            break  # could not tell: keep msgspec's wording
    return path


def _dotted(msgspec_path: str) -> str:
    return msgspec_path[1:] if msgspec_path.startswith(".") else msgspec_path


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path and field else path or field


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
