"""FitConfig: YAML round trip, validation as ConfigError, and the 1:1 mapping between its fields,
the flags of `transferkit fit` and the keywords of `transferkit.fit`."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest
import yaml

from transferkit.cli.main import build_parser
from transferkit.config import FitConfig
from transferkit.errors import ConfigError

fit_module = importlib.import_module("transferkit.pipeline")
FIELDS = [f.name for f in dataclasses.fields(FitConfig)]
DEFAULTS = FitConfig(data="x.csv")


def non_default_values(tmp_path: Path) -> dict:
    """A valid, non-default value for every field (a new field must be added here)."""
    return {
        "data": "reviews.csv", "train": "train.csv", "val": "val.csv", "test": "test.csv",
        "text_column": "body", "label_column": "stars", "task": "regression", "val_fraction": 0.15,
        "test_fraction": 0.25, "train_size": 100, "eval_data": ["builtin:vader-amazon", "other.csv"],
        "model": "tiny-bert", "strategy": "freeze-bottom:1", "max_length": 64, "image_size": 96, "dropout": 0.2,
        "epochs": 5, "lr": 1e-4, "head_lr": 2e-3, "layer_decay": 0.8, "batch_size": 8, "eval_batch_size": 32, "optimizer": "sgd",
        "momentum": 0.8, "weight_decay": 0.0, "scheduler": "cosine", "warmup_ratio": 0.05, "grad_clip": 0.5,
        "seed": 7, "patience": 0, "metric": "rmse", "eval_every": 10, "bucket": False, "precision": "fp32",
        "cache_frozen": False, "threads": 1, "skip_before": True,
        "out": str(tmp_path / "run"), "quiet": True, "resume": True, "overwrite": True,
    }


def as_argv(values: dict) -> list[str]:
    argv = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            argv += [flag, ",".join(value) if isinstance(value, list) else str(value)]
    return argv


def fit_parser():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    return parser, subparsers.choices["fit"]


def parsed_overrides(argv: list[str]) -> tuple[str | None, dict]:
    """What `transferkit fit ARGV` hands to transferkit.fit (as cli/fit.py does)."""
    args = build_parser().parse_args(["fit", *argv])
    return args.config, {k: v for k, v in vars(args).items() if k not in ("config", "run", "command")}


def test_values_cover_every_field_with_non_defaults(tmp_path):
    values = non_default_values(tmp_path)
    assert list(values) == FIELDS
    assert all(values[name] != getattr(DEFAULTS, name) for name in FIELDS if name != "data")


def test_yaml_round_trip(tmp_path):
    config = FitConfig(**non_default_values(tmp_path))
    path = tmp_path / "config.yaml"
    config.save_yaml(path)
    # Run-control flags (what to do with the output directory) are never carried over by a saved config.
    saved = dataclasses.replace(config, overwrite=False, resume=False)
    assert config.overwrite and config.resume
    assert yaml.safe_load(path.read_text()) == saved.to_dict()  # plain YAML, readable by anyone
    assert FitConfig.from_yaml(path) == saved
    assert FitConfig.from_yaml(path, epochs=9, lr=3e-4) == dataclasses.replace(saved, epochs=9, lr=3e-4)


def test_every_field_has_a_cli_flag_in_help(tmp_path, capsys):
    parser, fit = fit_parser()
    flags = {option for action in fit._actions for option in action.option_strings}
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["fit", "--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    for name in FIELDS:
        flag = "--" + name.replace("_", "-")
        assert flag in flags and flag in help_text, f"{name} has no {flag} flag"
        assert any(f.metadata.get("help") for f in dataclasses.fields(FitConfig) if f.name == name)


def test_flags_and_keywords_give_the_same_config(tmp_path):
    values = non_default_values(tmp_path)
    config_file, overrides = parsed_overrides(as_argv(values))
    assert config_file is None and set(overrides) == set(FIELDS)
    from_cli = fit_module.resolve_config(config_file, **overrides)
    from_python = fit_module.resolve_config(**values)
    assert from_cli == from_python == FitConfig(**values)


def test_fit_takes_every_field_as_a_keyword(tmp_path):
    parameters = inspect.signature(fit_module.fit).parameters
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    out = tmp_path / "run"
    # Validation happens before anything is written: an invalid keyword value touches nothing.
    with pytest.raises(ConfigError, match="epochs"):
        fit_module.fit(data=str(tmp_path / "x.csv"), epochs=0, out=str(out))
    with pytest.raises(ConfigError, match="unknown option.*epoch\\b"):
        fit_module.fit(data=str(tmp_path / "x.csv"), epoch=3, out=str(out))
    assert not out.exists()


def test_flags_override_yaml_and_unset_flags_keep_it(tmp_path):
    path = tmp_path / "config.yaml"
    FitConfig(data="reviews.csv", epochs=4, lr=2e-5, bucket=False).save_yaml(path)
    config_file, overrides = parsed_overrides([str(path), "--epochs", "7"])
    assert overrides == {"epochs": 7}
    config = fit_module.resolve_config(config_file, **overrides)
    assert (config.epochs, config.lr, config.bucket, config.data) == (7, 2e-5, False, "reviews.csv")


def test_hand_written_yaml_types(tmp_path):
    path = tmp_path / "config.yaml"
    # YAML 1.1 reads 5e-5 (no dot) as a string; it must still mean the number.
    path.write_text("data: reviews.csv\nlr: 5e-5\nepochs: 2\nbucket: no\neval_data: a.csv,b.csv\n")
    config = FitConfig.from_yaml(path)
    assert (config.lr, config.epochs, config.bucket, config.eval_data) == (5e-5, 2, False, ["a.csv", "b.csv"])


def test_paths_are_accepted_as_strings(tmp_path):
    config = FitConfig(data=tmp_path / "reviews.csv", out=tmp_path / "run", eval_data=[tmp_path / "x.csv"])
    assert config.data == str(tmp_path / "reviews.csv") and config.eval_data == [str(tmp_path / "x.csv")]
    config.save_yaml(tmp_path / "c.yaml")  # a Path would not be representable in safe YAML


INVALID = {
    "epochs-0": ({"epochs": 0}, "epochs must be >= 1"),
    "batch-0": ({"batch_size": 0}, "batch_size"),
    "lr-negative": ({"lr": -1e-3}, "learning rates"),
    "dropout-1.5": ({"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
    "warmup-1": ({"warmup_ratio": 1.0}, "warmup_ratio"),
    "fractions": ({"val_fraction": 0.5, "test_fraction": 0.45}, "leave data to train on"),
    "val-fraction-0": ({"val_fraction": 0.0}, "fractions"),
    "patience": ({"patience": -1}, "patience"),
    "train-size-1": ({"train_size": 1}, "train_size"),
    "no-data": ({"data": None}, "--data"),
    "bad-optimizer": ({"optimizer": "adam"}, "optimizer must be one of adamw, sgd, not 'adam'"),
    "bad-task": ({"task": "ranking"}, "task must be one of classification, regression"),
    "bad-scheduler": ({"scheduler": "step"}, "scheduler must be one of"),
    "epochs-text": ({"epochs": "three"}, "epochs must be a whole number"),
    "epochs-fraction": ({"epochs": 2.5}, "epochs must be a whole number"),
    "lr-nan": ({"lr": float("nan")}, "lr must be a number"),
    "bool-text": ({"bucket": "maybe"}, "bucket must be true or false"),
    "list-number": ({"eval_data": 3}, "eval_data must be a list"),
    "model-list": ({"model": ["a", "b"]}, "model must be a string"),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
@pytest.mark.parametrize("source", ["python", "yaml"])
def test_invalid_values_are_config_errors(tmp_path, case, source):
    values, pattern = INVALID[case]
    merged = {"data": "reviews.csv", **values}
    if source == "python":
        with pytest.raises(ConfigError, match=pattern):
            FitConfig.from_dict(merged)
    else:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump({k: v for k, v in merged.items()}))
        with pytest.raises(ConfigError, match=pattern):
            FitConfig.from_yaml(path)


@pytest.mark.parametrize("text,pattern", [
    ("data: x.csv\nepochs: 2\nlearning_rate: 0.1\nbatchsize: 4\n", r"unknown option\(s\) batchsize, learning_rate"),
    ("data: [unclosed\n", "not valid YAML"),
    ("- data\n- x.csv\n", "expected a mapping"),
])
def test_bad_yaml_files(tmp_path, text, pattern):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=pattern) as info:
        FitConfig.from_yaml(path)
    assert str(path) in str(info.value)


def test_missing_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        FitConfig.from_yaml(tmp_path / "nope.yaml")


def test_empty_yaml_needs_data(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("")
    with pytest.raises(ConfigError, match="--data"):
        FitConfig.from_yaml(path)
    assert FitConfig.from_yaml(path, data="x.csv") == FitConfig(data="x.csv")


@pytest.mark.parametrize("argv", [["--optimizer", "adam"], ["--epochs", "two"], ["--task", "ranking"]])
def test_cli_rejects_bad_choices_and_types(argv, capsys):
    with pytest.raises(SystemExit) as info:
        parsed_overrides(["--data", "x.csv", *argv])
    assert info.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_validation_metric_auto():
    assert FitConfig(data="x").validation_metric == "accuracy"
    assert FitConfig(data="x", task="regression").validation_metric == "rmse"
    assert FitConfig(data="x", metric="macro_f1").validation_metric == "macro_f1"


def test_public_fit_and_evaluate_stay_functions():
    """Importing the modules behind the lazy exports must not shadow the exported functions."""
    import transferkit

    first = transferkit.fit
    importlib.import_module("transferkit.pipeline")
    importlib.import_module("transferkit.evaluation.metrics")
    assert callable(first) and callable(transferkit.fit) and callable(transferkit.evaluate)
    assert transferkit.fit is first
