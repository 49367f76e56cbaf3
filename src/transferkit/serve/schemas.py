"""Request and response bodies; FastAPI turns them into the OpenAPI document at /openapi.json."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator


class PredictRequest(BaseModel):
    """A batch of inputs: texts for a text model, base64-encoded image files for an image model."""

    model_config = ConfigDict(extra="forbid")

    inputs: Annotated[list[StrictStr], Field(
        min_length=1, description="texts, or standard base64 of image files (PNG, JPEG, ...); none empty",
        examples=[["a gripping, beautiful film", "two hours I will never get back"]])]
    model: StrictStr | None = Field(
        None, description="optional: the registry version the client expects (e.g. v3); "
                          "409 when another version is served. Never a path or a model name.")

    @field_validator("inputs")
    @classmethod
    def _no_empty_inputs(cls, inputs: list[str]) -> list[str]:
        empty = [i for i, text in enumerate(inputs) if not text.strip()]
        if empty:
            raise ValueError(f"inputs {empty[:10]} are empty or only whitespace")
        return inputs


class Prediction(BaseModel):
    """One input's answer: label and class probabilities (classification) or value (regression)."""

    label: str | None = None
    probabilities: dict[str, float] | None = None
    value: float | None = None
    truncated: bool = Field(description="the text had more tokens than the model reads (max_length); "
                                        "only the first max_length tokens were used")


class PredictResponse(BaseModel):
    version: str | None = Field(description="registry version that answered (null for a plain artifact directory)")
    predictions: list[Prediction]


class Health(BaseModel):
    status: str = "ok"


class ModelInfo(BaseModel):
    """The served artifact: its metadata (transferkit.json) and registry record, limits, counters."""

    version: str | None
    registry: dict[str, Any] | None = Field(description="version, parent, data fingerprint, metrics, created_at")
    source: str = Field(description="'registry' (the promoted version) or 'directory'")
    task: str
    modality: str
    label_names: list[str]
    max_length: int | None = Field(description="tokens per text the model reads; longer texts are truncated")
    loaded_at: str
    metadata: dict[str, Any]
    limits: dict[str, Any]
    stats: dict[str, int] = Field(description="requests answered, model calls (batches), items, largest batch")


class ReloadResult(BaseModel):
    reloaded: bool
    version: str | None
    previous: str | None


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "malformed JSON, an undecodable image, or a model field that is not a version id"),
        (401, "missing or wrong bearer token"),
        (409, "the requested version is not the one served"),
        (413, "body over the size limit, or more inputs than allowed per request"),
        (415, "body not sent as application/json"),
        (422, "body does not match the schema (wrong types, empty inputs, unknown fields)"),
    )
}
