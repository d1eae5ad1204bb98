"""The web UI's parts beside `app.py`: what the page and its public API share, and the API itself."""
