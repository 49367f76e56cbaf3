"""`transferkit update --registry DIR`: re-fine-tune a registered version and register the result.

1. Start from the promoted version (or `from_version`), under its registry id.
2. Train the new version into OUT/model (nothing in the registry changes while it trains, so a
   killed update leaves the registry exactly as it was).
3. Register it with `parent` = the version it came from, its data fingerprint and metrics, under
   the registry's own numbering: the id is written into the artifact inside the registering
   transaction, so it never clashes with an id the ledger would have derived.
4. Promote it only when its backward transfer is not worse than `max_forgetting`; otherwise it
   stays registered, unpromoted and marked not promotable (`promote` refuses it unless forced).
5. Write the forgetting ledger to REGISTRY/ledger.json (atomically) and the report to OUT.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..export.artifact import load_model, read_meta
from ..io_utils import write_json_atomic
from ..registry import Registry, RegistryError, Version
from .ledger import Ledger
from .update import (LEDGER_FILE, UpdateOptions, UpdateResult, claim_out, lineage, load_batch, restamp, train_version,
                     update_config, write_run_report)


@dataclass
class RegisteredUpdate:
    result: UpdateResult
    version: Version
    promoted: bool
    message: str
    registry: Path


def update_registered(registry: str | Path | Registry, data: str, out: str | Path | None = None,
                      options: UpdateOptions | None = None, from_version: str | None = None,
                      **fit_options: Any) -> RegisteredUpdate:
    """Re-fine-tune the registry's promoted version (or `from_version`) on `data` and register it."""
    registry = registry if isinstance(registry, Registry) else Registry(registry)
    options = options or UpdateOptions()
    cfg = update_config(data, out, options, fit_options)
    source = _source(registry, from_version)
    try:
        previous, meta, directory = load_model(source.path)
    except ModelError as exc:
        raise ModelError(f"{source.version}: {exc}") from None
    claim_out(Path(cfg.out), cfg.overwrite, keep=registry.root, what="the registry")
    parent = lineage(previous, meta, directory, cfg, options, source.version, source.data_fingerprint)
    parent.ledger = parent.ledger.relabel(registry_labels(registry, source, parent.ledger))
    new = load_batch(data, parent, cfg)
    expected = registry.next_version()
    result = train_version(parent, data, new, expected, options, cfg)
    registered = registry.register(result.model_dir, parent=source.version, data_fingerprint=result.fingerprint,
                                   prepare=lambda staging, version: restamp(staging, expected, version))
    result = _renamed(result, expected, registered.version)
    if result.promotable:
        registry.promote(registered.version)
    message = promotion_message(registered.version, result)
    write_run_report(result, options, message, [("registry", str(registry.root)), ("registered as", registered.version)])
    write_registry_ledger(registry, result.ledger, registered.version)
    return RegisteredUpdate(result, registered, result.promotable, message, registry.root)


def _source(registry: Registry, from_version: str | None) -> Version:
    if from_version is not None:
        return registry.get(from_version)
    if not registry.exists():
        raise RegistryError(f"{registry.root}: no model registry here; register the first version with "
                            "`transferkit register --model DIR --promote`")
    promoted = registry.promoted()
    if promoted is None:
        raise RegistryError(f"{registry.root}: nothing is promoted; promote a version or pass --from VERSION")
    return promoted


def registry_labels(registry: Registry, source: Version, ledger: Ledger) -> dict[str, str]:
    """Ledger row -> registry id. The newest row is `source`; older rows follow the registry's
    parent chain while each ancestor carries that row's label (its registry id, or the label its
    artifact gave itself). Rows from before the
    registered lineage are marked '(unregistered)', so no row can read as another registry id."""
    names: dict[str, str] = {}
    current: Version | None = source
    for position, label in enumerate(reversed(ledger.versions)):
        if current is not None and (position == 0 or label in (current.version, _artifact_label(current))):
            names[label] = current.version
            current = registry.get(current.parent) if current.parent else None
        else:
            current = None
            names[label] = f"{label} (unregistered)"
    return names


def _artifact_label(version: Version) -> str:
    """The ledger label an artifact gave itself ('v1' for one made by `fit`, which has none)."""
    return read_meta(version.path).get("version", "v1")


def _renamed(result: UpdateResult, expected: str, actual: str) -> UpdateResult:
    """The result under the id the registry assigned (another process may have registered first)."""
    if actual == expected:
        return result
    restamp(result.model_dir, expected, actual)
    return replace(result, version=actual, ledger=result.ledger.relabel({expected: actual}))


def promotion_message(version: str, result: UpdateResult) -> str:
    if result.promotable:
        return f"{version} registered and promoted: {result.reason}"
    return (f"{version} registered but NOT promoted: {result.reason}; the previous version is still served "
            f"(promote it anyway with `transferkit promote {version} --force`)")


def write_registry_ledger(registry: Registry, ledger: Ledger, latest: str) -> None:
    """REGISTRY/ledger.json: the ledger of the newest update's lineage, and what is promoted now."""
    promoted = registry.promoted()
    record = {**ledger.to_dict(), "latest": latest, "promoted": promoted.version if promoted else None}
    write_json_atomic(registry.root / LEDGER_FILE, record)
