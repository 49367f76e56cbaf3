"""`transferkit register / versions / promote / rollback` and `serve`'s argument handling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from serving import text_artifact
from transferkit.cli.main import build_parser, main


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_artifact(tmp_path_factory)


def test_register_promote_rollback_and_list(tmp_path: Path, artifact: Path, capsys: pytest.CaptureFixture) -> None:
    models = str(tmp_path / "models")
    assert main(["versions", "--registry", models]) == 0
    assert "no versions" in capsys.readouterr().out
    assert main(["register", "--registry", models, "--model", str(artifact)]) == 0
    assert main(["register", "--registry", models, "--model", str(artifact), "--parent", "v1",
                 "--data-fingerprint", "batch-2", "--promote"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"registered v1 in {models}", f"registered v2 (promoted) in {models}"]

    assert main(["versions", "--registry", models]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].startswith("  v1       -") and table[2].startswith("* v2       v1")
    assert "batch-2" in table[2] and str(artifact.resolve()) in table[2] and table[-1] == "* promoted"

    assert main(["promote", "--registry", models, "v1"]) == 0
    assert main(["rollback", "--registry", models]) == 0
    assert "v2 is promoted again" in capsys.readouterr().out
    assert main(["versions", "--registry", models, "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["promoted"] == "v2" and [v["version"] for v in listing["versions"]] == ["v1", "v2"]
    assert [(h["version"], h["rolled_back_at"] is None) for h in listing["history"]] == [("v2", True), ("v1", False)]


def test_the_registry_defaults_to_the_environment(tmp_path: Path, artifact: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("TRANSFERKIT_REGISTRY", str(tmp_path / "env-models"))
    assert main(["register", "--model", str(artifact)]) == 0
    assert (tmp_path / "env-models" / "registry.sqlite").is_file()
    monkeypatch.delenv("TRANSFERKIT_REGISTRY")
    monkeypatch.chdir(tmp_path)
    assert main(["register", "--model", str(artifact)]) == 0
    assert (tmp_path / "models" / "artifacts" / "v1" / "transferkit.json").is_file()


@pytest.mark.parametrize("argv,message", [
    (["promote", "v9"], "v9: no such version"),
    (["promote", "../../etc"], "'../../etc' is not a version id"),
    (["rollback"], "nothing to roll back to"),
    (["register", "--model", "{tmp}"], "is not a transferkit artifact"),
    (["register", "--model", "{artifact}", "--parent", "v5"], "v5: no such version"),
])
def test_mistakes_are_one_line_errors(tmp_path: Path, artifact: Path, capsys: pytest.CaptureFixture,
                                      argv: list[str], message: str) -> None:
    models = tmp_path / "models"
    assert main(["register", "--registry", str(models), "--model", str(artifact), "--promote"]) == 0
    capsys.readouterr()
    argv = [a.format(tmp=tmp_path, artifact=artifact) for a in argv]
    assert main([*argv, "--registry", str(models)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("transferkit: error:") and message in err[0]


def test_serve_flags_default_to_loopback_and_one_source(capsys: pytest.CaptureFixture) -> None:
    args = build_parser().parse_args(["serve", "--model", "m"])
    assert (args.host, args.port, args.token, args.no_batching) == ("127.0.0.1", 8000, None, False)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--model", "m", "--registry", "r"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_promote_refuses_a_version_that_forgot_too_much_unless_forced(tmp_path: Path, artifact: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    forgetful = tmp_path / "forgetful"
    shutil.copytree(artifact, forgetful)
    meta = json.loads((forgetful / "transferkit.json").read_text())
    meta["metrics"] = {"backward_transfer": -0.05, "max_forgetting": 0.02, "promotable": False,
                       "accuracy_by_batch": {"a": 0.5, "b": 0.75}, "new_batch": "b"}
    (forgetful / "transferkit.json").write_text(json.dumps(meta))
    models = str(tmp_path / "models")
    assert main(["register", "--registry", models, "--model", str(artifact), "--promote"]) == 0
    assert main(["register", "--registry", models, "--model", str(forgetful), "--parent", "v1"]) == 0
    capsys.readouterr()

    assert main(["promote", "--registry", models, "v2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["transferkit: error: v2 is not promotable: backward transfer -0.0500 is worse than "
                   "--max-forgetting 0.0200; pass --force to promote it anyway (`transferkit promote v2 --force`)"]
    assert main(["versions", "--registry", models]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].startswith("* v1 ") and table[2].startswith("x v2       v1")
    assert "acc 0.7500  -0.0500" in table[2] and table[-1].startswith("x not promotable")
    assert main(["promote", "--registry", models, "v2", "--force"]) == 0
    assert capsys.readouterr().out.startswith("promoted v2 (forced);")
    assert main(["versions", "--registry", models, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["promoted"] == "v2"
