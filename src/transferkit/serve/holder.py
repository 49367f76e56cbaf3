"""What the service serves, and swapping it for a new version without dropping requests.

A reload loads the new Predictor completely (in a thread, so requests keep being answered),
then replaces one reference. A batch already running keeps the object it started with, so
nothing in flight is dropped or answered by half of each; the old model is freed when the last
batch holding it finishes.

The service only ever loads artifacts from the directory given at start (`--model DIR`) or from
the registry's promoted version (`--registry DIR`); a request never names a path.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..predictor import Predictor, load
from ..registry import Registry, Version


@dataclass(frozen=True)
class Served:
    """One loaded model and where it came from."""

    predictor: Predictor
    version: Version | None  # None when serving a directory rather than a registry version
    loaded_at: str

    @property
    def version_id(self) -> str | None:
        return self.version.version if self.version else None


class ModelSource(ABC):
    """Where the served model comes from."""

    kind: str = ""

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    @abstractmethod
    def wanted(self) -> Version | None:
        """The registry version that should be served now (None for a plain directory)."""

    @abstractmethod
    def load(self) -> Served:
        """Load the model that should be served now."""

    def _served(self, path: Path, version: Version | None) -> Served:
        predictor = load(path, batch_size=self.batch_size)
        return Served(predictor, version, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


class DirectorySource(ModelSource):
    """One artifact directory (`serve --model DIR`); a reload re-reads it."""

    kind = "directory"

    def __init__(self, path: str | Path, batch_size: int = 64) -> None:
        super().__init__(batch_size)
        self.path = Path(path)

    def wanted(self) -> Version | None:
        return None

    def load(self) -> Served:
        return self._served(self.path, None)


class RegistrySource(ModelSource):
    """The promoted version of a registry (`serve --registry DIR`)."""

    kind = "registry"

    def __init__(self, registry: Registry, batch_size: int = 64) -> None:
        super().__init__(batch_size)
        self.registry = registry

    def wanted(self) -> Version | None:
        version = self.registry.promoted()
        if version is None:
            raise ModelError(f"{self.registry.root}: no version is promoted; run `transferkit promote VERSION`")
        return version

    def load(self) -> Served:
        version = self.wanted()
        return self._served(version.path, version)


class ModelHolder:
    """The currently served model; `reload` swaps it atomically."""

    def __init__(self, source: ModelSource) -> None:
        self.source = source
        self.current: Served = source.load()
        self._reloading = asyncio.Lock()

    async def reload(self) -> dict[str, Any]:
        """Serve what the source says now. Raises ModelError (and keeps serving the old model)
        when it cannot be loaded or would change the modality requests are validated for."""
        async with self._reloading:
            loop = asyncio.get_running_loop()
            previous = self.current
            wanted = await loop.run_in_executor(None, self.source.wanted)
            if wanted is not None and previous.version_id == wanted.version:
                return {"reloaded": False, "version": wanted.version, "previous": previous.version_id}
            fresh = await loop.run_in_executor(None, self.source.load)
            if fresh.predictor.modality != previous.predictor.modality:
                raise ModelError(f"{fresh.version_id or 'the new model'} is a {fresh.predictor.modality} model and "
                                 f"this service answers {previous.predictor.modality} requests; restart it instead")
            self.current = fresh
            return {"reloaded": True, "version": fresh.version_id, "previous": previous.version_id}
