"""Every numeric setting has a declared range, and a value outside it is refused in one line
before any data is read: walked from the schema and from every option of every config group,
so that a new numeric setting without a range fails here."""

import copy
import functools
import typing
from pathlib import Path

import pytest
from hydra import compose, initialize
from hydra.utils import get_class
from omegaconf import OmegaConf

from fdagmm.config import CHECKED_BY_ITS_LIBRARY, Config, ScoreConfig, declared_ranges, score_config
from fdagmm.errors import ConfigError
from fdagmm.ranges import Range, argument_ranges
from fdagmm.run.experiment import train

CONF = Path(__file__).resolve().parents[2] / "conf"
# Groups whose options are classes of their own: their arguments' ranges are on the constructors.
CLASS_GROUPS = ("partition", "strategy")
# Set by the test so that composing resolves without a Hydra run, and reading data would fail.
BASE = ["paths.output_dir=/tmp/unused", "data.train_path=/nonexistent/kdd.gz"]


@functools.cache  # composing takes 0.2 s; each option is composed once for every test here
def _compose(overrides: tuple[str, ...]):
    with initialize(version_base="1.3", config_path="../../conf"):
        return compose(config_name="config", overrides=[*BASE, *overrides])


def _numeric_leaves(node, prefix: str = "") -> dict[str, object]:
    """Dotted key -> value of every number, or non-empty list of numbers, in a container."""
    leaves = {}
    for key, value in node.items():
        if isinstance(value, dict):
            leaves |= _numeric_leaves(value, f"{prefix}{key}.")
        elif _is_number(value) or (isinstance(value, list) and value and all(_is_number(v) for v in value)):
            leaves[f"{prefix}{key}"] = value
    return leaves


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _group_options() -> list[tuple[str, ...]]:
    """The overrides that select each option of each config group (the defaults: ())."""
    return [()] + [(f"{group.name}={option.stem}",) for group in sorted(CONF.iterdir()) if group.is_dir() for option in sorted(group.glob("*.yaml"))]


def _range_of(cfg, key: str) -> Range | None:
    group, _, argument = key.partition(".")
    if group in CLASS_GROUPS:
        return argument_ranges(get_class(cfg[group]._target_)).get(argument)
    return declared_ranges(Config).get(key)


def test_every_numeric_field_of_the_schema_declares_a_range():
    def numeric_fields(schema, prefix=""):
        for name, hint in typing.get_type_hints(schema).items():
            hint = next((a for a in typing.get_args(hint) if a is not type(None)), hint)  # Optional[X] -> X
            if hint in (int, float):
                yield prefix + name
            elif hasattr(hint, "__dataclass_fields__"):
                yield from numeric_fields(hint, f"{prefix}{name}.")

    for schema in (Config, ScoreConfig):
        missing = [key for key in numeric_fields(schema) if key not in declared_ranges(schema)]
        assert not missing, f"numeric settings without a range: {missing}: declare one with fdagmm.config.ranged"


@pytest.mark.parametrize("overrides", _group_options(), ids=lambda o: o[0] if o else "defaults")
def test_every_numeric_setting_of_every_group_option_declares_a_range(overrides):
    cfg = _compose(overrides)
    leaves = _numeric_leaves(OmegaConf.to_container(cfg, resolve=True))
    missing = [key for key in leaves if key not in declared_ranges(Config) and _range_of(cfg, key) is None]
    assert not missing, (
        f"numeric settings without a range: {missing}: declare one in fdagmm.config (schema fields, "
        f"the model and trainer tables) or on the constructor's parameter ({', '.join(CLASS_GROUPS)})"
    )


def _outside(allowed: Range) -> list[float]:
    """Values just outside ``allowed``: each bound itself when it is open, one past it when closed."""
    values = []
    if allowed.low is not None:
        values.append(allowed.low if allowed.low_open else allowed.low - 1)
    if allowed.high is not None:
        values.append(allowed.high if allowed.high_open else allowed.high + 1)
    return values or [float("inf")]  # only a non-finite number is outside a range without bounds


def _out_of_range_cases():
    """(overrides that select the option, key, its range): each setting once."""
    cases = {
        # A setting that only some options of its group set (method.detector's): the first that does.
        key: (next((o for o in _group_options() if OmegaConf.select(_compose(o), key) is not None), ()), allowed)
        for key, allowed in declared_ranges(Config).items()
        if allowed is not CHECKED_BY_ITS_LIBRARY
    }
    for overrides in _group_options():
        group = overrides[0].partition("=")[0] if overrides else None
        if group in CLASS_GROUPS:
            node = _compose(overrides)[group]
            for argument, allowed in argument_ranges(get_class(node._target_)).items():
                if argument in node:  # an argument that the option sets (StudyScenario derives num_clients)
                    cases.setdefault(f"{group}.{argument}", (overrides, allowed))
    return [
        pytest.param(overrides, key, bad, id=f"{key}={bad}")
        for key, (overrides, allowed) in cases.items()
        for bad in _outside(allowed)
    ]


@pytest.mark.parametrize("overrides, key, bad", _out_of_range_cases())
def test_a_value_out_of_range_is_refused_before_any_data_is_read(tmp_path, overrides, key, bad):
    cfg = copy.deepcopy(_compose(overrides))
    value = OmegaConf.select(cfg, key)
    # A list's first element out of range.
    OmegaConf.update(cfg, key, [bad, *list(value)[1:]] if OmegaConf.is_list(value) else bad)
    cfg.paths.output_dir = str(tmp_path)
    with pytest.raises(ConfigError) as e:
        train(cfg)  # data.path does not exist: reading data first would be a DataError
    assert str(e.value).startswith(f"{key} must be "), str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "key, bad", [(key, bad) for key, allowed in declared_ranges(ScoreConfig).items() for bad in _outside(allowed)]
)
def test_a_scoring_argument_out_of_range_is_refused(key, bad):
    with pytest.raises(ConfigError, match=f"^{key} must be "):
        score_config(["model=m", "input=i", f"{key}={bad}"])


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("compile", "sometimes", "^model.compile must be true, false or auto, got 'sometimes'$"),
        ("cuda_graph", "maybe", "^model.cuda_graph must be true or false, got 'maybe'$"),
    ],
)
def test_the_training_step_settings_take_only_their_values(tmp_path, key, value, message):
    cfg = copy.deepcopy(_compose(()))
    cfg.model[key] = value
    cfg.paths.output_dir = str(tmp_path)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
