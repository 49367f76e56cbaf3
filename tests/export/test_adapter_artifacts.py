"""Adapter-only artifacts (base model checked by hash) and `transferkit merge` (verified in a fresh process)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import transferkit
from transferkit.cli.main import main
from transferkit.errors import ModelError, VerificationError
from transferkit.export.merge import MERGE_TOLERANCE, merge_artifact
from transferkit.zoo.tiny import tiny_bert_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from conftest import make_sentences, write_csv, write_image_folder

    root = tmp_path_factory.mktemp("adapters")
    data = {"tiny-bert": str(write_csv(root / "reviews.csv", make_sentences(120))),
            "tiny-cnn": str(write_image_folder(root / "images"))}
    made = {}
    for model, spec in (("tiny-bert", "lora"), ("tiny-cnn", "lora"), ("tiny-bert", "ia3"), ("tiny-bert", "full")):
        result = transferkit.fit(data=data[model], model=model, strategy=spec, epochs=1, batch_size=8, lr=1e-3,
                                 out=str(root / f"{model}-{spec}"), quiet=True, skip_before=True)
        made[(model, spec)] = result.model_dir
    return made, data


def _test_items(data: str) -> list:
    return list(transferkit.data.prepare_task_data(data, seed=0).test.items)


def _rewrite_meta(model_dir, **backbone_changes) -> None:
    path = model_dir / "transferkit.json"
    meta = json.loads(path.read_text())
    meta["backbone"].update(backbone_changes)
    path.write_text(json.dumps(meta))


def test_adapter_loads_with_peft_directly(runs):
    """The adapter directory is plain peft: PeftModel.from_pretrained on the base encoder gives
    the very hidden states transferkit's reloaded backbone computes."""
    from peft import PeftModel
    from transformers import AutoModel

    made, data = runs
    loaded = transferkit.load(made[("tiny-bert", "lora")])
    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(tiny_bert_dir()), made[("tiny-bert", "lora")] / "adapter")
    peft_model.eval()
    batch = loaded.preprocessor.collate(loaded.preprocessor.encode(_test_items(data["tiny-bert"])[:4]))
    with torch.no_grad():
        ours = loaded.model.backbone.encoder(**batch).last_hidden_state
        theirs = peft_model(**batch).last_hidden_state
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_a_different_base_model_is_refused(runs, tmp_path):
    import shutil

    made, _ = runs
    copy = tmp_path / "model"
    shutil.copytree(made[("tiny-bert", "lora")], copy)
    _rewrite_meta(copy, source_weights_sha256="0" * 64)
    with pytest.raises(ModelError, match="the adapter was trained on tiny-bert with weights sha256 000000000000"):
        transferkit.load(copy)
    _rewrite_meta(copy, source="not-a-model")
    with pytest.raises(ModelError, match="holds an adapter only and needs its base model: unknown model 'not-a-model'"):
        transferkit.load(copy)


@pytest.mark.parametrize("model", ["tiny-bert", "tiny-cnn"])
def test_merge_writes_a_standalone_model_with_the_same_predictions(runs, model, tmp_path):
    made, data = runs
    adapter_dir = made[(model, "lora")]
    result = merge_artifact(adapter_dir, tmp_path / "merged", quiet=True)
    merged_dir = result.directory
    assert not (merged_dir / "adapter").exists()
    assert (merged_dir / ("encoder" if model == "tiny-bert" else "backbone.safetensors")).exists()
    meta = json.loads((merged_dir / "transferkit.json").read_text())
    assert "adapter" not in meta["backbone"]
    assert meta["merge"]["max_abs_logit_diff"] == result.max_abs_logit_diff <= MERGE_TOLERANCE
    assert meta["merge"]["n_verified"] == len(_test_items(data[model]))
    items = _test_items(data[model])
    np.testing.assert_allclose(transferkit.load(merged_dir).logits(items), transferkit.load(adapter_dir).logits(items),
                               atol=MERGE_TOLERANCE, rtol=0)
    assert "## Merged" in (merged_dir / "README.md").read_text() and "## Adapter" not in (merged_dir / "README.md").read_text()


def test_merged_text_encoder_is_a_plain_hugging_face_model(runs, tmp_path):
    from transformers import AutoModel

    made, _ = runs
    merged_dir = merge_artifact(made[("tiny-bert", "lora")], tmp_path / "merged", quiet=True).directory
    encoder = AutoModel.from_pretrained(merged_dir / "encoder")
    assert not any("lora" in name for name, _ in encoder.named_parameters())


def test_a_merge_that_changes_predictions_is_refused_and_writes_nothing(runs, tmp_path, monkeypatch):
    import transferkit.export.merge as merge_module

    real_merge = merge_module.merge_adapter

    def broken_merge(backbone):  # a merge that corrupts a weight it folds into
        real_merge(backbone)
        with torch.no_grad():
            weight = backbone.encoder.encoder.layer[0].output.dense.weight
            weight.add_(0.1 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))

    monkeypatch.setattr(merge_module, "merge_adapter", broken_merge)
    made, _ = runs
    with pytest.raises(VerificationError, match="differ from the adapter's by up to .* nothing was written"):
        merge_artifact(made[("tiny-bert", "lora")], tmp_path / "merged", quiet=True)
    assert not (tmp_path / "merged").exists()
    assert not list(tmp_path.iterdir())  # no temporary directory left behind either


@pytest.mark.parametrize("which, message", [
    (("tiny-bert", "ia3"), "holds an ia3 adapter; only LoRA adapters merge"),
    (("tiny-bert", "full"), "has no adapter to merge \\(strategy full\\)"),
])
def test_merging_a_non_lora_artifact_is_one_line_error(runs, which, message, tmp_path, capsys):
    made, _ = runs
    with pytest.raises(ModelError, match=message):
        merge_artifact(made[which], tmp_path / "merged", quiet=True)
    assert main(["merge", "--model", str(made[which]), "--out", str(tmp_path / "merged")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("transferkit: error:") and "\n" not in error
    assert not (tmp_path / "merged").exists()


def test_merge_cli_reports_sizes_and_difference(runs, tmp_path, capsys):
    made, _ = runs
    assert main(["merge", "--model", str(made[("tiny-cnn", "lora")]), "--out", str(tmp_path / "merged"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "merged: " in out and "the adapter artifact is" in out and "max |Δ logit|" in out
    assert main(["merge", "--model", str(made[("tiny-cnn", "lora")]), "--out", str(tmp_path / "merged")]) == 2
