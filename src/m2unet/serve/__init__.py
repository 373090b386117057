"""``m2unet serve``: a web page and an HTTP API (FastAPI on uvicorn) over the inference pipeline.

:mod:`.app` builds the application (routes, limits, token, CORS), :mod:`.work` does the work of a request in the
worker threads, :mod:`.cli` is the command; the page (``static/``: one HTML, one JS, one CSS) needs no build step
and nothing from the internet.
"""
