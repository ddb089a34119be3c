"""hassil 3.8.1 n-gram fuzzy matcher baseline (runs in its own pinned venv).

Use :mod:`bench.fuzzy_ngram.client`; ``run_fuzzy.py`` only runs inside the venv.
"""
