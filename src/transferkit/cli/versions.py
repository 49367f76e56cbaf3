"""The model registry from the command line:

    transferkit register --model DIR [--parent v1] [--data-fingerprint HEX]
    transferkit versions [--json]
    transferkit promote VERSION [--force]
    transferkit rollback

Every command takes --registry DIR (default: $TRANSFERKIT_REGISTRY, else ./models). A running
`transferkit serve --registry DIR` picks up a promotion or rollback on POST /admin/reload or SIGHUP.
A version `transferkit update` marked not promotable (it forgot more than --max-forgetting) is
listed with `x` and its backward transfer; `promote` refuses it unless --force.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..registry import Registry, Version, default_registry_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    register = _command(sub, "register", "copy an artifact into the model registry as a new version", run_register)
    register.add_argument("--model", required=True, help="artifact directory (a run's model/ or the run itself)")
    register.add_argument("--parent", help="the version this model was fine-tuned from (e.g. v1)")
    register.add_argument("--data-fingerprint",
                          help="identifies the training data (default: sha256 of its origin and split.json)")
    register.add_argument("--promote", action="store_true", help="also promote the new version")
    versions = _command(sub, "versions", "list the registered model versions", run_versions)
    versions.add_argument("--json", action="store_true", help="print versions and promotion history as JSON")
    promote = _command(sub, "promote", "make VERSION the one `serve --registry` serves", run_promote)
    promote.add_argument("version", help="a version id such as v2")
    promote.add_argument("--force", action="store_true",
                         help="promote even a version marked not promotable (it forgot too much of earlier data)")
    _command(sub, "rollback", "undo the latest promotion: serve the previously promoted version", run_rollback)


def _command(sub: argparse._SubParsersAction, name: str, help: str, run) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help)
    parser.add_argument("--registry", help="registry folder (default: $TRANSFERKIT_REGISTRY, else ./models)")
    parser.set_defaults(run=run)
    return parser


def _registry(args: argparse.Namespace) -> Registry:
    return Registry(args.registry or default_registry_dir())


def run_register(args: argparse.Namespace) -> int:
    registry = _registry(args)
    version = registry.register(args.model, parent=args.parent, data_fingerprint=args.data_fingerprint)
    if args.promote:
        registry.promote(version.version)
    print(f"registered {version.version}{' (promoted)' if args.promote else ''} in {registry.root}")
    return 0


def run_versions(args: argparse.Namespace) -> int:
    registry = _registry(args)
    versions = registry.versions()
    promoted = registry.promoted()
    current = promoted.version if promoted else None
    if args.json:
        print(json.dumps({"registry": str(registry.root), "promoted": current,
                          "versions": [v.summary() for v in versions], "history": registry.history()}, indent=2))
        return 0
    if not versions:
        print(f"no versions in {registry.root}; add one with `transferkit register --model DIR`")
        return 0
    print(f"{'':2}{'version':<9}{'parent':<8}{'created (UTC)':<22}{'data':<14}{'after':>12}{'bwt':>9}  source")
    for version in versions:
        mark = "* " if version.version == current else "x " if not _promotable(version) else "  "
        print(f"{mark}{version.version:<9}{version.parent or '-':<8}{version.created_at:<22}"
              f"{version.data_fingerprint[:12]:<14}{_headline(version):>12}{_bwt(version):>9}  {version.source}")
    print("* promoted" if current else "nothing promoted yet: `transferkit promote VERSION`")
    if any(not _promotable(v) for v in versions):
        print("x not promotable: forgot more than --max-forgetting of earlier data (promote VERSION --force)")
    return 0


def _headline(version: Version) -> str:
    """Test accuracy: of the run (`fit`), or on the newest data batch (`update`)."""
    after: dict[str, Any] = version.metrics.get("after", {})
    for key, name in (("accuracy", "acc"), ("rmse", "rmse")):
        if isinstance(after.get(key), (int, float)):
            return f"{name} {after[key]:.4f}"
    by_batch = version.metrics.get("accuracy_by_batch", {})
    newest = by_batch.get(version.metrics.get("new_batch")) if isinstance(by_batch, dict) else None
    return f"acc {newest:.4f}" if isinstance(newest, (int, float)) else "-"


def _bwt(version: Version) -> str:
    """Backward transfer of an updated version (negative: it forgot), '-' otherwise."""
    bwt = version.metrics.get("backward_transfer")
    return f"{bwt:+.4f}" if isinstance(bwt, (int, float)) else "-"


def _promotable(version: Version) -> bool:
    return version.metrics.get("promotable") is not False


def run_promote(args: argparse.Namespace) -> int:
    registry = _registry(args)
    version = registry.promote(args.version, force=args.force)
    forced = " (forced)" if args.force else ""
    print(f"promoted {version.version}{forced}; a running `serve --registry` switches on POST /admin/reload or SIGHUP")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    registry = _registry(args)
    version = registry.rollback()
    print(f"rolled back: {version.version} is promoted again")
    return 0
