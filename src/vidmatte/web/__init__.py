"""The web page (``vidmatte serve``, the ``web`` extra): upload, mark, run, watch, download.

``app.create_app(Settings(...))`` builds the FastAPI application; everything it runs goes through
``pipeline.Job`` like the CLI's commands. See docs/WEB.md.
"""
