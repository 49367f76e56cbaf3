"""`transferkit adapt` refuses bad input through the CLI: one `transferkit: error:` line on stderr,
exit status 2, no traceback, and nothing written to --out (no run directory, no leftovers).

Each case calls `transferkit.cli.main.main([...])` in-process; every refusal happens before a
model is trained, so the cases are quick.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import make_sentences, one_torch_thread, write_csv, write_image_folder
from transferkit.cli.main import main


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@dataclass
class Case:
    argv: list[str]
    mentions: list[str]  # what the one error line must name


def adapt_argv(d: Path, source: Path | str, target: Path | str, *extra: str, model: str = "tiny-bert") -> list[str]:
    return ["adapt", "--source", str(source), "--target", str(target), "--model", model, "--epochs", "1",
            "--out", str(d / "out"), "--quiet", *extra]


def two_text_domains(d: Path, target_labels: tuple[str, str] = ("pos", "neg")) -> tuple[Path, Path]:
    source = write_csv(d / "source.csv", make_sentences(60, seed=1))
    rename = dict(zip(("pos", "neg"), target_labels))
    target = write_csv(d / "target.csv", [(text, rename[label]) for text, label in make_sentences(60, seed=2)])
    return source, target


def truncated_jpeg(path: Path) -> Path:
    """A JPEG cut in half: its header verifies, decoding it fails."""
    from PIL import Image

    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def different_label_sets(d):
    source, target = two_text_domains(d, target_labels=("positive", "neg"))
    return Case(adapt_argv(d, source, target), ["different label sets", "only in source: pos", "only in target: positive"])


def header_only_target(d):
    source, _ = two_text_domains(d)
    (d / "empty.csv").write_text("text,label\n", encoding="utf-8")
    return Case(adapt_argv(d, source, d / "empty.csv"), ["empty.csv"])


def empty_file_target(d):
    source, _ = two_text_domains(d)
    (d / "nothing.csv").write_bytes(b"")
    return Case(adapt_argv(d, source, d / "nothing.csv"), ["nothing.csv"])


def image_target_without_images(d):
    source = write_image_folder(d / "source", per_class=6)
    for label in ("bright", "dark"):
        (d / "target" / label).mkdir(parents=True)
    return Case(adapt_argv(d, source, d / "target", model="tiny-cnn"), [str(d / "target"), "no images"])


def regression_task(d):
    source, target = two_text_domains(d)
    return Case(adapt_argv(d, source, target, "--task", "regression"), ["--task classification", "'regression'"])


def unknown_method(d):
    source, target = two_text_domains(d)
    return Case(adapt_argv(d, source, target, "--methods", "coral,tent"), ["'tent'", "dann, coral, mmd, joint"])


def joint_without_target_labels(d):
    source, target = two_text_domains(d)
    return Case(adapt_argv(d, source, target, "--methods", "joint", "--target-labels", "none"),
                ["joint", "--target-labels few or all"])


def target_share_out_of_range(d):
    source, target = two_text_domains(d)
    return Case(adapt_argv(d, source, target, "--target-share", "1.5"), ["--target-share", "1.5"])


def few_per_class_zero(d):
    source, target = two_text_domains(d)
    return Case(adapt_argv(d, source, target, "--methods", "joint", "--target-labels", "few", "--few-per-class", "0"),
                ["--few-per-class"])


def text_source_image_target(d):
    source, _ = two_text_domains(d)
    target = write_image_folder(d / "target", per_class=6)
    return Case(adapt_argv(d, source, target), ["text", "image", str(target)])


def corrupt_image_in_source(d):
    source = write_image_folder(d / "source", per_class=6)
    (source / "bright" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    target = write_image_folder(d / "target", per_class=6, size=12, seed=1)
    return Case(adapt_argv(d, source, target, model="tiny-cnn"), ["broken.png"])


def truncated_image_in_target(d):
    source = write_image_folder(d / "source", per_class=6)
    target = write_image_folder(d / "target", per_class=6, size=12, seed=1)
    truncated_jpeg(target / "dark" / "cut.jpg")
    return Case(adapt_argv(d, source, target, model="tiny-cnn"), ["cut.jpg"])


CASES: dict[str, Callable[[Path], Case]] = {f.__name__: f for f in (
    different_label_sets, header_only_target, empty_file_target, image_target_without_images, regression_task,
    unknown_method, joint_without_target_labels, target_share_out_of_range, few_per_class_zero,
    text_source_image_target, corrupt_image_in_source, truncated_image_in_target,
)}


@pytest.mark.parametrize("name", list(CASES))
def test_adapt_bad_input_fails_with_one_clear_line(tmp_path: Path, capsys, name: str) -> None:
    case = CASES[name](tmp_path)
    code = main(case.argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert code == 2, (code, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("transferkit: error:"), lines
    for needle in case.mentions:
        assert needle in lines[0], f"{needle!r} not named in: {lines[0]}"
    assert not (tmp_path / "out").exists(), "--out was created"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], "temporary leftovers"


def test_images_of_different_sizes_are_accepted_and_the_resize_is_stated(tmp_path: Path, capsys) -> None:
    """20×20 source and 12×12 target images: no error, both resized to --image-size, and said so."""
    import json

    source = write_image_folder(tmp_path / "source", per_class=8, size=20)
    target = write_image_folder(tmp_path / "target", per_class=8, size=12, seed=1)
    argv = adapt_argv(tmp_path, source, target, "--methods", "coral", "--image-size", "16", "--no-save-models",
                      model="tiny-cnn")
    assert main(argv) == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "out" / "adapt.json").read_text())["preprocessing"]
    assert record["image_size"] == 16
    assert record["original_sizes"] == {"source": ["20×20 (16)"], "target": ["12×12 (16)"]}
    assert "resized to 16×16 px" in record["description"]
    assert "resized to 16×16 px" in (tmp_path / "out" / "report.md").read_text()
