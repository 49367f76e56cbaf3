"""`transferkit merge`: a LoRA adapter artifact folded into a standalone model, verified first.

    adapter artifact → W = W₀ + (α/r)·B·A in every adapted layer (peft's `merge_and_unload`)
                     → a plain artifact (encoder/ or backbone.safetensors) in a temporary sibling of --out
                     → the adapter artifact and the merged one each loaded in a fresh process
                       (`transferkit.load`, as users do) and run on the artifact's test split
                     → max |Δ logit| > MERGE_TOLERANCE: VerificationError, nothing is written
                     → else renamed to --out, the measured difference recorded in transferkit.json

Merging only re-associates float32 sums (W₀x + s·B(Ax) becomes (W₀ + s·BA)x), so logits move by
rounding error (around 1e-6); the tolerance of 1e-4 leaves room for that, and none for a
wrong merge. The merged model needs neither peft nor its base model at inference.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, VerificationError
from ..io_utils import atomic_dir
from ..runs import Log
from ..zoo.peft_wrap import merge_adapter
from .artifact import META_FILE, load_model, read_meta, resolve_artifact_dir, write_artifact
from .exporter import check_out
from .splits import verification_split
from .verify import directory_mb, run_fresh

MERGE_TOLERANCE = 1e-4  # largest accepted max |Δ logit| between the merged and the unmerged model


@dataclass
class MergeResult:
    directory: Path
    max_abs_logit_diff: float
    n_verified: int
    merged_mb: float
    adapter_mb: float


def merge_artifact(model: str | Path, out: str | Path, *, overwrite: bool = False, quiet: bool = False,
                   tolerance: float = MERGE_TOLERANCE) -> MergeResult:
    """Merge the LoRA artifact at `model` into a standalone artifact at `out` (see the module docstring)."""
    log = Log(quiet)
    source_dir = resolve_artifact_dir(model)
    meta = read_meta(source_dir)
    _require_lora(meta, source_dir)
    out = check_out(Path(out).expanduser(), source_dir, overwrite, what="the adapter artifact")
    test, described = verification_split(source_dir, meta, None)
    merged, _, _ = load_model(source_dir)
    merge_adapter(merged.backbone)
    with atomic_dir(out, overwrite=overwrite) as staging:
        write_artifact(staging, merged, _merged_meta(meta, source_dir), _merged_card(source_dir, meta),
                       {"split.json": (source_dir / "split.json").read_text(encoding="utf-8")})
        log(f"verifying the merge on {described}, in a fresh process")
        with tempfile.TemporaryDirectory(prefix="transferkit-merge-") as work:
            (unmerged_logits, _), (merged_logits, _) = run_fresh([source_dir, staging], test.items, Path(work))
        difference = float(np.max(np.abs(unmerged_logits - merged_logits)))
        if not difference <= tolerance:
            raise VerificationError(f"the merged model's logits differ from the adapter's by up to {difference:.3g} "
                                    f"(> tolerance {tolerance:g}) on {described}; nothing was written to {out}")
        _record(staging, difference, tolerance, len(test))
    result = MergeResult(out, difference, len(test), directory_mb(out), directory_mb(source_dir))
    log(f"merged into {out}: max |Δ logit| {difference:.3g} over {len(test)} test examples (tolerance {tolerance:g})")
    return result


def _require_lora(meta: dict[str, Any], directory: Path) -> None:
    method = meta.get("backbone", {}).get("adapter", {}).get("method")
    if method is None:
        raise ModelError(f"{directory} has no adapter to merge (strategy {meta.get('strategy')}): it is a standalone "
                         "model already; merge takes a LoRA artifact")
    if method != "lora":
        raise ModelError(f"{directory} holds an {method} adapter; only LoRA adapters merge into the weights here "
                         "(transferkit.load runs the adapter as it is)")


def _merged_meta(meta: dict[str, Any], source_dir: Path) -> dict[str, Any]:
    """The adapter artifact's description, with a standalone backbone and where it came from."""
    kept = {k: v for k, v in meta.items() if k not in ("format", "format_version", "head", "versions", "backbone")}
    backbone = {k: meta["backbone"][k] for k in ("source", "source_weights_sha256") if k in meta["backbone"]}
    merge = {"from": str(source_dir.resolve()), "method": "lora", "adapter": meta["backbone"]["adapter"]}
    return {**kept, "backbone": backbone, "merge": merge}


def _merged_card(source_dir: Path, meta: dict[str, Any]) -> str:
    card = (source_dir / "README.md").read_text(encoding="utf-8").split("\n## Adapter\n")[0].rstrip()
    lines = ["", "", "## Merged", "",
             f"The LoRA adapter of {source_dir} was merged into the weights (W = W₀ + (α/r)·B·A): this is a "
             "standalone model that needs neither peft nor its base model. Before it was written, both models ran "
             f"on the test split in a fresh process; transferkit.json (merge) records the largest logit difference."]
    if meta["modality"] == "text":
        lines += ["", "`encoder/` is a standard Hugging Face model directory: "
                  "`transformers.AutoModel.from_pretrained('PATH/TO/model/encoder')`."]
    return card + "\n".join(lines) + "\n"


def _record(staging: Path, difference: float, tolerance: float, n: int) -> None:
    path = staging / META_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["merge"].update({"max_abs_logit_diff": difference, "tolerance": tolerance, "n_verified": n})
    path.write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
