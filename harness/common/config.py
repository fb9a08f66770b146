"""Compose a run's configuration with Hydra's compose API.

``configs/run.yaml`` holds the harness defaults; trailing ``key=value``
overrides from the command line are checked here first, so a typo gets
"did you mean" instead of Hydra's stack trace. Hyperparameter overrides
(``optimizer.lr=3e-3``) are checked against the submission's DEFAULTS: the
name must be one of them (a bare ``lr=...`` is pointed to ``optimizer.lr``)
and the value must fit the default's type and the SEARCH_SPACE entry, if any
(:func:`check_hyperparameter`), so a bad value fails before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from numbers import Integral, Real
from typing import Any, Iterable, Mapping

from harness.errors import UserInputError, did_you_mean

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
HP_SECTIONS = ("optimizer", "norm")
SWITCHES = ("diagnostics",)  # sections a bare key=value turns on or off (their `enabled`)


def _flat_keys(node: Mapping[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in node.items():
        path = f"{prefix}{key}"
        keys.add(path)
        if isinstance(value, Mapping) and value:
            keys |= _flat_keys(value, path + ".")
    return keys


def _kind(value: Any) -> str:
    """"bool", "int", "float", "str", "none" or "other": what a value is, for type checks."""
    if value is None:
        return "none"
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's bool too
        return "bool"
    if isinstance(value, Integral):
        return "int"
    if isinstance(value, Real):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "dict"
    return "other"


_ACCEPTS = {"float": {"float", "int"}, "int": {"int"}, "bool": {"bool"}, "str": {"str"},
            "list": {"list"}, "dict": {"dict"}}
_EXPECTED = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "a string",
             "list": "a list", "dict": "a mapping"}


def _fits(value: Any, like: Any) -> bool:
    """Whether ``value`` has the type of ``like``: an int where an int is, an int
    or a float where a float is, a bool only where a bool is; None fits anything."""
    accepted = _ACCEPTS.get(_kind(like))
    return accepted is None or _kind(value) in accepted


def check_hyperparameter(section: str, name: str, value: Any, defaults: Mapping[str, Any],
                         space: Any = None) -> None:
    """Raise UserInputError unless ``value`` fits hyperparameter ``name``: the
    type of its default (None there accepts anything) and, where the submission's
    SEARCH_SPACE has an entry for it, that entry (one of a categorical list of
    strings; a number of a numeric range; the type of a feasible point)."""
    key = f"{section}.{name}={_shown(value)}"
    default = defaults.get(name)
    if not _fits(value, default):
        raise UserInputError(
            f"{key}: expected {_EXPECTED[_kind(default)]} like the default {_shown(default)}, got {_described(value)}"
        )
    entry = space.get(name) if isinstance(space, Mapping) else None
    if not isinstance(entry, Mapping):
        return
    if "feasible_points" in entry:
        points = list(entry.get("feasible_points") or [])
        if points and all(isinstance(p, str) for p in points):
            if value not in points:
                raise UserInputError(
                    f"{key}: expected one of {', '.join(repr(p) for p in points)} (its SEARCH_SPACE), got {_described(value)}"
                )
        elif points and not any(_fits(value, p) for p in points):
            raise UserInputError(
                f"{key}: expected a value like its SEARCH_SPACE points {points!r}, got {_described(value)}"
            )
    elif "min" in entry or "max" in entry:
        if _kind(value) not in ("int", "float"):
            raise UserInputError(
                f"{key}: expected a number in its SEARCH_SPACE range [{entry.get('min')}, {entry.get('max')}], "
                f"got {_described(value)}"
            )


def _shown(value: Any) -> str:
    """A value as it is written in an override (``null``, ``true``, ``'abc'``, ``0.001``)."""
    kind = _kind(value)
    return "null" if kind == "none" else str(bool(value)).lower() if kind == "bool" else repr(value)


def _described(value: Any) -> str:
    kind = _kind(value)
    return {"none": "null", "bool": f"the boolean {_shown(value)}", "int": f"the integer {value!r}",
            "float": f"the number {value!r}", "str": f"the string {value!r}"}.get(kind, f"{type(value).__name__} {value!r}")


def _bare_hyperparameter(key: str, hyperparameter_names: Mapping[str, Iterable[str]]) -> list[str]:
    """``optimizer.<key>`` / ``norm.<key>`` where ``key`` is a hyperparameter name given without its section."""
    return [f"{section}.{key}" for section in HP_SECTIONS if key in set(hyperparameter_names.get(section, ()))]


def compose(
    overrides: Iterable[str],
    hyperparameter_names: Mapping[str, Iterable[str]],
    config_name: str = "run",
    search_spaces: Mapping[str, Any] | None = None,
    aliases: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The composed config as a plain dict.

    ``hyperparameter_names`` maps "optimizer"/"norm" to the names the chosen
    submissions accept; where it maps them to their DEFAULTS (a mapping of
    name -> default), each overridden value is also checked against the
    default's type and ``search_spaces[section]`` (the SEARCH_SPACE), if given
    (:func:`check_hyperparameter`). A name the submission knows by another
    (``aliases[section]``, AlgoPerf's ``learning_rate`` for ``lr``: api.canonical_name)
    is rewritten to its own.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    base = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / f"{config_name}.yaml"))
    known = _flat_keys(base)
    checked = []
    for raw in overrides:
        if "=" not in raw:
            raise UserInputError(f"override {raw!r} is not key=value")
        key = raw.split("=", 1)[0].lstrip("+~")
        section = key.split(".", 1)[0]
        if section in HP_SECTIONS and "." in key:
            from harness.api import canonical_name, unknown_hyperparameter

            allowed = list(hyperparameter_names.get(section, ()))
            name = canonical_name(key.split(".", 1)[1], allowed, (aliases or {}).get(section))
            if name not in allowed:
                raise UserInputError(f"{unknown_hyperparameter(section, key.split('.', 1)[1], allowed)} (in {raw!r})")
            checked.append(f"++{section}.{name}={raw.split('=', 1)[1]}")
        elif key in SWITCHES:  # `diagnostics=true` is short for `diagnostics.enabled=true`
            checked.append(f"{key}.enabled={raw.split('=', 1)[1]}")
        elif key not in known:
            bare = _bare_hyperparameter(key, hyperparameter_names)
            hint = f"did you mean {' or '.join(repr(b) for b in bare)}?" if bare else did_you_mean(key, known)
            raise UserInputError(f"unknown config key {key!r} in {raw!r}; {hint}")
        else:
            checked.append(raw)

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
            cfg = hydra_compose(config_name=config_name, overrides=checked)
    except Exception as exc:  # Hydra's grammar errors are multi-line; keep the first
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"bad override: {first}") from None
    finally:
        GlobalHydra.instance().clear()
    composed = OmegaConf.to_container(cfg, resolve=True)
    for section in HP_SECTIONS:
        defaults = hyperparameter_names.get(section)
        if isinstance(defaults, Mapping):
            space = (search_spaces or {}).get(section)
            for name, value in (composed.get(section) or {}).items():
                check_hyperparameter(section, name, value, defaults, space)
    return composed


def named_configs(folder: str) -> list[str]:
    """Names of the YAML files in ``configs/<folder>/`` (e.g. rulesets, presets)."""
    return sorted(p.stem for p in (CONFIG_DIR / folder).glob("*.yaml"))


def load_named_yaml(folder: str, name_or_path: str | Path, what: str) -> tuple[Path, dict[str, Any]]:
    """``configs/<folder>/<name>.yaml`` by name, or any YAML file by path.

    Returns the file and its mapping; an unknown name gets "did you mean".
    """
    import yaml

    from harness.errors import unknown

    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = CONFIG_DIR / folder / f"{name_or_path}.yaml"
        if not path.is_file():
            raise unknown(what, str(name_or_path), named_configs(folder))
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserInputError(f"{what} {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{what} {path}: expected a mapping at the top level")
    return path, data
