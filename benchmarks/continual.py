"""Forgetting under sequential fine-tuning: movie → amazon → tweets (VADER), each update method.

v1 = minilm-l6 fine-tuned on builtin:vader-movie and registered; then, per method, in a registry
of its own, `update_registered` re-fine-tunes v1 on builtin:vader-amazon (v2) and v2 on
builtin:vader-tweets (v3) — each step `--from` the previous version, promoted or not, so every
method sees the same sequence. Prints the final accuracy matrix (rows: versions, columns: data
batches), backward transfer, forward gain and the promotion decisions per method.

    python benchmarks/continual.py [--train-size 1000] [--epochs 1] [--methods naive,replay,l2sp,ewc,lwf]
                                   [--max-forgetting 0.02] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import transferkit
from transferkit.continual.registered import update_registered
from transferkit.continual.update import METHODS, UpdateOptions
from transferkit.registry import Registry

SEQUENCE = ("builtin:vader-movie", "builtin:vader-amazon", "builtin:vader-tweets")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--replay-size", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-forgetting", type=float, default=0.02)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    common = dict(model="minilm-l6", epochs=args.epochs, train_size=args.train_size, max_length=64, seed=args.seed, quiet=True)
    results, decisions = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        first = transferkit.fit(data=SEQUENCE[0], out=str(root / "v1"), skip_before=True, **common).model_dir
        common.pop("model")
        for method in args.methods.split(","):
            registry = Registry(root / f"registry-{method}")
            version = registry.register(first).version
            registry.promote(version)
            options = UpdateOptions(method=method, replay_size=args.replay_size, max_forgetting=args.max_forgetting)
            decisions[method] = []
            for step, data in enumerate(SEQUENCE[1:], start=2):
                done = update_registered(registry, data, root / f"{method}-v{step}", options, from_version=version,
                                         **common)
                version = done.version.version
                decisions[method].append(done.message)
            results[method] = done.result.ledger.to_dict()
            print(f"\n## {method}\n{done.result.ledger.table()}\n" + "\n".join(decisions[method]), file=sys.stderr)
    print(f"{'method':<8}" + "".join(f"{b:>14}" for b in results[next(iter(results))]["batches"]) + f"{'BWT v3':>10}{'gain v3':>10}")
    for method, ledger in results.items():
        last = ledger["versions"][-1]
        cells = "".join(f"{ledger['accuracy'][last][b]:>14.4f}" for b in ledger["batches"])
        print(f"{method:<8}{cells}{ledger['backward_transfer'][last]:>+10.4f}{ledger['forward_gain'][last]:>+10.4f}")
    if args.json:
        record = {"config": {k: str(v) for k, v in vars(args).items()}, "ledgers": results, "decisions": decisions}
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
