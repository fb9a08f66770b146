"""Compose a run's configuration with Hydra's compose API.

``configs/run.yaml`` holds the harness defaults; trailing ``key=value``
overrides from the command line are checked here first, so a typo gets
"did you mean" instead of Hydra's stack trace. Hyperparameter overrides
(``optimizer.lr=3e-3``) are checked against the submission's DEFAULTS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.errors import UserInputError, did_you_mean

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
HP_SECTIONS = ("optimizer", "norm")


def _flat_keys(node: Mapping[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in node.items():
        path = f"{prefix}{key}"
        keys.add(path)
        if isinstance(value, Mapping) and value:
            keys |= _flat_keys(value, path + ".")
    return keys


def compose(
    overrides: Iterable[str],
    hyperparameter_names: Mapping[str, Iterable[str]],
    config_name: str = "run",
) -> dict[str, Any]:
    """The composed config as a plain dict.

    ``hyperparameter_names`` maps "optimizer"/"norm" to the names the chosen
    submissions accept.
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
            name = key.split(".", 1)[1]
            allowed = list(hyperparameter_names.get(section, ()))
            if name not in allowed:
                raise UserInputError(
                    f"unknown {section} hyperparameter {name!r} in {raw!r}; {did_you_mean(name, allowed)}"
                )
            checked.append("++" + raw.lstrip("+~"))
        elif key not in known:
            raise UserInputError(f"unknown config key {key!r} in {raw!r}; {did_you_mean(key, known)}")
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
    return OmegaConf.to_container(cfg, resolve=True)


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
