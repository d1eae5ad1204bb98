"""The web UI: the page (`page.py`), one file per tab, how answers and lists are shown (`presentation.py`), who is
asking (`session.py`), and the public API for `gradio_client` (`api.py`). It receives the app's typed parts from
`compose.App`; `app.py` only launches it."""
