"""The core every other layer may import, and which imports nothing else of selflearn.

* :mod:`~selflearn.core.errors` -- the exception tree;
* :mod:`~selflearn.core.schema` -- the interaction-log records (turns, feedback, simulation truth);
* :mod:`~selflearn.core.home` -- a home's configuration: floors, areas, entities and aliases;
* :mod:`~selflearn.core.hooks` -- the rewrite-hook contract between an assistant and a rewriter;
* :mod:`~selflearn.core.store` -- the DuckDB log store, its ingest and its quarantine;
* :mod:`~selflearn.core.text`, :mod:`~selflearn.core.delex`, :mod:`~selflearn.core.guards` -- text
  helpers: spoken-form normalisation, delexicalisation with a home's names, rewrite safety guards;
* :mod:`~selflearn.core.embed` -- the static sentence embedder (model2vec distilled from MiniLM);
* :mod:`~selflearn.core.artefacts` -- saving and loading learned components (one contract).

Nothing is imported here: Spark's Python workers import :mod:`selflearn.core.delex` alone.
See ``docs/architecture.md`` for the layers above.
"""
