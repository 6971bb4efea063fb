"""The training configs, one file per method family, each with named presets.

A config is named on the command line as `NAME[:PRESET]` (`--config=wgan_gp:cifar10`), found inside
the installed package, or as a path to any config file (`--config=my_configs/x.py:preset`), as in
the Flax examples and big_vision. In Python: `jaxgan.configs.get("wgan_gp", "smoke")`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os

import ml_collections
from absl import flags
from ml_collections import config_flags

_HERE = os.path.dirname(os.path.abspath(__file__))
_NOT_CONFIGS = ("__init__", "common")


def names() -> tuple[str, ...]:
    """The configs shipped with jaxgan: wgan_gp, pggan, cyclegan, ..."""
    files = sorted(f[:-3] for f in os.listdir(_HERE) if f.endswith(".py"))
    return tuple(f for f in files if f not in _NOT_CONFIGS)


def _unknown(name: str) -> ValueError:
    near = difflib.get_close_matches(name, names(), n=1)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    return ValueError(
        f"--config: '{name}' is neither a config file nor one of jaxgan's configs "
        f"({', '.join(names())}).{hint} Give NAME[:PRESET], e.g. --config=wgan_gp:cifar10, or a "
        "path to a config file."
    )


def resolve(spec: str) -> str:
    """`NAME[:PRESET]` -> `<package>/NAME.py[:PRESET]`; a path that exists is returned unchanged.

    `configs/NAME.py` (the form used before the configs moved into the package) is read as NAME
    when no such file exists, so commands written for a checkout keep working.
    """
    path, colon, preset = spec.partition(":")
    if os.path.exists(path):
        return spec
    bare_name = os.sep not in path and not path.endswith(".py")
    checkout_form = path.endswith(".py") and os.path.basename(os.path.dirname(path)) == "configs"
    if not (bare_name or checkout_form):
        raise ValueError(
            f"--config: no config file at '{path}'. Give a path that exists, or NAME[:PRESET] "
            f"with NAME one of {', '.join(names())}."
        )
    name = os.path.basename(path).removesuffix(".py")
    if name not in names():
        raise _unknown(name)
    return os.path.join(_HERE, name + ".py") + colon + preset


def get(name: str, preset: str = "") -> ml_collections.ConfigDict:
    """The config `name` (e.g. 'wgan_gp') at `preset` (e.g. 'smoke'), unlocked, for Python use."""
    if name not in names():
        raise _unknown(name)
    return importlib.import_module(f"{__name__}.{name}").get_config(preset)


def load(spec: str) -> ml_collections.ConfigDict:
    """The config of a `--config` value, `NAME[:PRESET]` or `PATH.py[:PRESET]`, unlocked."""
    path, _, preset = resolve(spec).partition(":")
    module_spec = importlib.util.spec_from_file_location("jaxgan_config_file", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(preset)


class _ByNameParser(flags.ArgumentParser):
    """ml_collections' config-file parser, reading `NAME[:PRESET]` as a config of this package."""

    def __init__(self, file_parser: flags.ArgumentParser):
        self._file_parser = file_parser

    def parse(self, argument):
        return self._file_parser.parse(resolve(argument))

    def flag_type(self):
        return self._file_parser.flag_type()


def _override_problem(config: ml_collections.ConfigDict, field_path: str) -> str | None:
    """What is wrong with `--config.<field_path>` on `config`, or None if the field exists."""
    node, walked = config, "config"
    for name in field_path.split("."):
        if not isinstance(node, ml_collections.ConfigDict):
            return f"{walked} is a {type(node).__name__}, not a group of fields."
        if name not in node:
            near = difflib.get_close_matches(name, list(node.keys()), n=1)
            hint = f" Did you mean --{walked}.{near[0]}?" if near else ""
            return f"{walked} has no field '{name}'.{hint} Its fields: {', '.join(node.keys())}."
        node, walked = node[name], f"{walked}.{name}"
    return None


def _name_misspelt_fields(flag: flags.Flag) -> None:
    """ml_collections lets a misspelt `--config.a.b` escape as an AttributeError traceback; absl
    prints its own flag errors in one line, so the field is named in one."""
    parse = flag._parse

    def parse_naming_the_field(argument):
        try:
            return parse(argument)
        except (AttributeError, KeyError):
            config = load(argument)
            for field_path in flag._GetOverrides(flag._GetArgv()):
                problem = _override_problem(config, field_path)
                if problem:
                    message = f"--config.{field_path}: {problem}"
                    raise flags.IllegalFlagValueError(message) from None
            raise

    flag._parse = parse_naming_the_field


def define_config_flag(
    help_string: str = "A config: NAME[:PRESET] (e.g. wgan_gp:cifar10) or a path to a config file.",
    flag_values: flags.FlagValues = flags.FLAGS,
    sys_argv: list[str] | None = None,
) -> flags.FlagHolder:
    """`--config`, locked (a misspelt `--config.field` fails, naming the field), by name or by path.

    `flag_values` and `sys_argv` (where the overrides are read; default sys.argv) are for tests.
    """
    holder = config_flags.DEFINE_config_file(
        "config", None, help_string, flag_values, lock_config=True, sys_argv=sys_argv
    )
    flag = flag_values["config"]
    flag.parser = _ByNameParser(flag.parser)
    _name_misspelt_fields(flag)
    return holder
