"""Adapter-only artifacts: the peft adapter and the head, plus a reference to the base model.

    model/
      adapter/adapter_model.safetensors   peft's files: `PeftModel.from_pretrained(base, "model/adapter")`
      adapter/adapter_config.json
      head.safetensors                    the task head (always trained, always saved)
      transferkit.json                    backbone: source + sha256 of the base weights, adapter method

The base model is not copied: loading rebuilds it from its source (zoo name, dir:, hf:) and
refuses it unless the sha256 of its weights is the one the adapter was trained on, so an adapter
never silently runs on different weights. `transferkit merge` writes a standalone model instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..zoo import Backbone, load_backbone
from ..zoo.peft_wrap import adapter_of, load_adapter

ADAPTER_DIR = "adapter"
MB = 2**20


def save_adapter(backbone: Backbone, directory: Path) -> dict[str, Any]:
    """Write the adapter of a wrapped backbone; return the backbone spec for transferkit.json."""
    adapter = adapter_of(backbone)
    adapter.save_pretrained(str(Path(directory) / ADAPTER_DIR))
    (Path(directory) / ADAPTER_DIR / "README.md").unlink(missing_ok=True)  # peft's placeholder card
    config = adapter.peft_config["default"]
    adapter_bytes = sum(f.stat().st_size for f in (Path(directory) / ADAPTER_DIR).iterdir())
    pre = backbone.preprocessor
    settings = {key: getattr(pre, key) for key in ("max_length", "image_size") if hasattr(pre, key)}
    return {"family": backbone.family, **settings,
            "adapter": {"method": str(config.peft_type.value).lower(), "path": ADAPTER_DIR, "bytes": adapter_bytes,
                        "full_model_bytes": _base_bytes(backbone, adapter)}}


def _base_bytes(backbone: Backbone, adapter: Any) -> int:
    """Bytes of the backbone's own weights (what a full artifact stores), adapter excluded."""
    from peft import get_peft_model_state_dict

    unique = {t.data_ptr(): t for t in backbone.state_dict().values()}
    adapter_tensors = get_peft_model_state_dict(adapter).values()
    return sum(t.numel() * t.element_size() for t in unique.values()) - sum(
        t.numel() * t.element_size() for t in adapter_tensors)


def load_adapter_backbone(directory: Path, spec: dict[str, Any]) -> Backbone:
    """The base model from its source, checked against the recorded hash, with the adapter on top."""
    source = spec.get("source", "")
    try:
        backbone = load_backbone(source, max_length=spec.get("max_length", 128), image_size=spec.get("image_size"))
    except ModelError as exc:
        raise ModelError(f"{directory} holds an adapter only and needs its base model: {exc}") from None
    expected, found = spec.get("source_weights_sha256", ""), backbone.weights_hash()
    if found != expected:
        raise ModelError(f"{directory}: the adapter was trained on {source} with weights sha256 {expected[:12]}…, "
                         f"but {source} here has {found[:12]}…; install that exact model, or use a merged artifact")
    load_adapter(backbone, Path(directory) / spec["adapter"]["path"])
    return backbone


def adapter_size_note(meta: dict[str, Any]) -> str:
    """'adapter-only artifact: …' for a log line and the model card; '' for other artifacts."""
    adapter = meta.get("backbone", {}).get("adapter")
    if not adapter:
        return ""
    share = 100 * adapter["bytes"] / adapter["full_model_bytes"]
    return (f"adapter-only artifact: the {adapter['method']} adapter is {adapter['bytes'] / MB:.2f} MB, "
            f"{share:.2f}% of the {adapter['full_model_bytes'] / MB:.1f} MB the full model's weights take")


def adapter_card(meta: dict[str, Any]) -> list[str]:
    """Model-card lines on how to use an adapter-only artifact (none for other artifacts)."""
    backbone = meta["backbone"]
    if "adapter" not in backbone:
        return []
    lines = ["", "## Adapter", "", adapter_size_note(meta) + ".",
             f"It needs its base model, {backbone['source']} (weights sha256 {backbone['source_weights_sha256'][:16]}…): "
             "`transferkit.load` rebuilds it and refuses different weights."]
    if backbone["adapter"]["method"] == "lora":
        lines.append("`transferkit merge --model PATH/TO/model --out merged` folds it into a standalone model.")
    if meta["modality"] == "text":
        lines += ["With peft directly: `PeftModel.from_pretrained(AutoModel.from_pretrained(BASE), 'PATH/TO/model/adapter')`."]
    return lines
