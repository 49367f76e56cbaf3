"""The REST service (FastAPI + uvicorn): app.py builds it (`create_app`), holder.py says what it
serves (an artifact directory or the registry's promoted version), batcher.py micro-batches.
It loads only transferkit artifacts, never a path or model named by a request."""
