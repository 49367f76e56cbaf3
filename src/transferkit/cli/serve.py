"""`transferkit serve --model DIR | --registry DIR`: the REST service on 127.0.0.1:8000.

The token comes from --token or $TRANSFERKIT_TOKEN (prefer the variable: command lines are
visible to every user of the machine). Binding to anything but loopback must be asked for.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..registry import default_registry_dir
from ..serve.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    defaults = Settings()
    parser = sub.add_parser("serve", help="serve an artifact, or the registry's promoted version, over HTTP")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="artifact directory (a run's model/) to serve as is")
    source.add_argument("--registry", help="registry folder: serve its promoted version; POST /admin/reload or "
                                           "SIGHUP switches to a newly promoted one (default: $TRANSFERKIT_REGISTRY "
                                           "or ./models, when --model is not given)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--token", help="bearer token every endpoint except /health requires "
                                        "(default: $TRANSFERKIT_TOKEN; none: no authentication)")
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes, help="largest request body")
    parser.add_argument("--max-items", type=int, default=defaults.max_items, help="most inputs per request")
    parser.add_argument("--max-image-pixels", type=int, default=defaults.max_image_pixels,
                        help="largest image (width x height) accepted")
    parser.add_argument("--max-batch", type=int, default=defaults.max_batch,
                        help="most items per model call (micro-batching)")
    parser.add_argument("--batch-window-ms", type=float, default=defaults.batch_window_ms,
                        help="how long a batch waits for more requests before it runs")
    parser.add_argument("--no-batching", action="store_true", help="one model call per request (for comparison)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..serve.app import create_app
    from ..serve.settings import is_loopback
    from ..zoo.text import quiet_transformers

    quiet_transformers()
    settings = _settings(args)
    app = create_app(_source(args), settings)  # loads the model: a bad one fails here, in one line
    if not is_loopback(args.host) and settings.token is None:
        print(f"transferkit: warning: serving on {args.host} without a token: anyone who can reach it may use it",
              file=sys.stderr)
    _log_to_stderr(args.log_level)
    what = app.state.holder.current.version_id or args.model
    print(f"transferkit: serving {what} on http://{args.host}:{args.port} (docs at /docs)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                access_log=args.log_level in ("debug", "info"), timeout_graceful_shutdown=30)
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    from ..serve.settings import token_from

    return Settings(max_body_bytes=args.max_body_bytes, max_items=args.max_items,
                    max_image_pixels=args.max_image_pixels, max_batch=args.max_batch,
                    batch_window_ms=args.batch_window_ms, batching=not args.no_batching,
                    token=token_from(args.token), reload_on_sighup=True)


def _source(args: argparse.Namespace):
    from ..registry import Registry
    from ..serve.holder import DirectorySource, RegistrySource

    batch_size = max(64, args.max_batch)  # a micro-batch of max_batch items is one forward pass
    if args.model:
        return DirectorySource(args.model, batch_size=batch_size)
    return RegistrySource(Registry(args.registry or default_registry_dir()), batch_size=batch_size)


def _log_to_stderr(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("transferkit: %(levelname)s: %(message)s"))
    logger = logging.getLogger("transferkit.serve")
    logger.addHandler(handler)
    logger.setLevel(level.upper())
