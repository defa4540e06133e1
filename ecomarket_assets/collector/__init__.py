"""The event collector: an HTTP service that takes batches of canonical events and lands them as micro-batch files.

`validation.py` judges every row with the ingestion rules, `writer.py` stores good rows durably (append, fsync,
then acknowledge) in CSV micro-batch files that the landing sensor ingests, `app.py` is the FastAPI app and
`__main__.py` runs it with uvicorn (`python -m ecomarket_assets.collector`, `make collector`).
"""
