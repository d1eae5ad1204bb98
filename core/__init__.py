"""What every part of the app shares: settings, model loading, generation, the answer pipeline.

Nothing heavy happens at import time; models load when `load_model` is called.
"""
