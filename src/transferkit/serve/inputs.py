"""From request inputs to model inputs and back: image decoding, truncation, one batch's answers."""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..registry import VERSION_PATTERN
from .errors import ApiError
from .holder import Served


def check_requested_version(requested: str | None, served: Served) -> None:
    """A request may pin the registry version it expects. Only an id like `v3` is accepted (400
    otherwise: the API never takes a path or a model name), and it must be the one served (409)."""
    if requested is None:
        return
    if not VERSION_PATTERN.match(requested):
        raise ApiError(400, "invalid_model", "model must be a registry version id such as v3; "
                                             "the service never loads models named by a request")
    if requested != served.version_id:
        serving = served.version_id or "an unregistered artifact"
        raise ApiError(409, "version_not_served", f"this service serves {serving}, not {requested}")


def decode_images(inputs: Sequence[str], image_size: int, max_pixels: int) -> list[np.ndarray]:
    """Base64 strings to RGB uint8 arrays of the model's input size; 400 naming the bad index."""
    return [_decode_image(text, index, image_size, max_pixels) for index, text in enumerate(inputs)]


def _decode_image(text: str, index: int, image_size: int, max_pixels: int) -> np.ndarray:
    from PIL import Image

    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_image", f"inputs[{index}] is not valid base64") from None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ApiError(400, "invalid_image", f"inputs[{index}] has {width}x{height} pixels; "
                                                     f"at most {max_pixels} are accepted")
            image.verify()  # structure and checksums, before any pixel is decoded
        with Image.open(io.BytesIO(raw)) as image:
            rgb = image.convert("RGB")
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for corrupt data
        raise ApiError(400, "invalid_image", f"inputs[{index}] is not a readable image "
                                             f"({type(exc).__name__})") from None
    # The same conversion the ImagePreprocessor makes (RGB, bilinear square resize), done here so
    # only model-sized images wait in the queue, not full-size decoded photos.
    if rgb.size != (image_size, image_size):
        rgb = rgb.resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(rgb).copy()


def truncation_flags(preprocessor: Any, texts: Sequence[str]) -> list[bool]:
    """Which texts are longer than the model's max_length tokens (the model reads the first ones)."""
    limit = preprocessor.max_length
    ids = preprocessor.tokenizer(list(texts), truncation=True, max_length=limit + 1)["input_ids"]
    return [len(row) > limit for row in ids]


def predict_batch(served: Served, items: list[Any]) -> tuple[list[dict[str, Any]], Served]:
    """One model call over a micro-batch: one result per item, and the model that answered."""
    predictor = served.predictor
    results = predictor.predict(items)
    if predictor.modality == "text":
        flags = truncation_flags(predictor.preprocessor, items)
    else:
        flags = [False] * len(items)
    return [{**result, "truncated": flag} for result, flag in zip(results, flags)], served
