"""``thresher app``: a local web app over one run directory (needs the ``app`` extra).

Import :func:`thresher.app.server.create_app` to build the FastAPI app; importing this package
itself pulls in no web framework.
"""
