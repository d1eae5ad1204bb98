"""What every part of the app shares: errors, settings in groups and how they are read, durable writes, the data
layout, identity, jobs, the fair lock, language detection and the BM25 term splitter. Imports nothing else of the
app, and nothing heavy at import time."""
