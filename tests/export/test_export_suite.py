"""`transferkit export --format a,b,... | all`: every format verified into OUT/<format>, one report across them,
and all or nothing."""

from __future__ import annotations

import pytest

from exporting import no_leftovers, sources
from transferkit.cli.main import main
from transferkit.errors import VerificationError
from transferkit.export import exporter
from transferkit.export.artifact import read_meta
from transferkit.export.suite import export_suite, requested_formats


def test_formats_into_one_directory_with_one_report(tmp_path_factory, tmp_path, capsys):
    source = sources(tmp_path_factory)["text"]
    out = tmp_path / "exports"
    assert main(["export", "--model", str(source), "--format", "int8,pruned", "--out", str(out), "--quiet",
                 "--sparsity", "0.3"]) == 0
    formats = ["int8", "pruned"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(formats)
    for name in formats:
        assert read_meta(out / name)["export"]["format"] == name and (out / name / "verification.json").is_file()
    assert read_meta(out / "pruned")["export"]["target_sparsity"] == 0.3
    report = (out / "report.md").read_text()
    assert all(f"| {name} |" in report for name in ["fp32", *formats])
    assert (out / "latency_accuracy.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert all(name in printed for name in formats) and "report.html" in printed


def test_all_means_the_formats_the_modality_supports():
    assert requested_formats("all", "image") == ["onnx", "onnx-int8", "pruned"]  # no int8 for a CNN
    assert requested_formats("all", "text") == ["int8", "onnx", "onnx-int8", "pruned"]


def test_one_failed_verification_leaves_nothing(tmp_path_factory, tmp_path, monkeypatch):
    real_compare = exporter.compare
    calls = []

    def second_export_fails(*args):
        calls.append(1)
        figures = real_compare(*args)
        return {**figures, "accuracy_drop_points": 50.0} if len(calls) == 2 else figures

    monkeypatch.setattr(exporter, "compare", second_export_fails)
    out = tmp_path / "out"
    with pytest.raises(VerificationError, match="pruned export failed verification"):
        export_suite(sources(tmp_path_factory)["text"], ["int8", "pruned"], out, quiet=True)
    assert no_leftovers(out)  # the int8 export that passed went with the rest


@pytest.mark.parametrize("formats,mentions", [("onnx,onnx", "name each format once"), ("onnx,fp16", "unknown export format 'fp16'"),
                                              ("int8,onnx", "--sparsity only apply to --format pruned")])
def test_bad_format_lists_are_one_line_errors(formats, mentions, tmp_path_factory, tmp_path, capsys):
    argv = ["export", "--model", str(sources(tmp_path_factory)["text"]), "--format", formats, "--out", str(tmp_path / "out")]
    if "sparsity" in mentions:
        argv += ["--sparsity", "0.5"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and mentions in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
