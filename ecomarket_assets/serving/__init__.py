"""The online recommendation API: the champion's nightly lists, re-ranked by what the person views right now.

`lists.py` holds the served data in memory (the `recommendations` file, item neighbours and the popular /
trending lists from the pair state, the flow sensor's live user state) and reloads it when the files change;
`session.py` re-ranks a list by the session's viewed products; `app.py` is the FastAPI app and `__main__.py`
runs it with uvicorn (`python -m ecomarket_assets.serving`). Code that wants the answer without HTTP calls
`lists.products_for(user_id, viewed, k)`.
"""
