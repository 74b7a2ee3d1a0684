"""Orchestration of the book's experiments: small, tested functions that combine the library's pieces (data,
ensembles, prior sampling, EP, sharding, caching) into the steps a chapter calls, one module per chapter.

- :mod:`~sgdbayes.experiments.function_probability`: P_SGD(f|S) from sharded ensembles, P_B(f|S) by EP and by direct
  sampling, and the headline statistics comparing them (chapter 1).
"""
