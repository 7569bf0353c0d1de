"""pipelines: code that sequences steps (load data, compute features, train, evaluate, export) into a run:
a network trained from scratch (`fit.py`), a musicnn head from a recipe (`musicnn_recipe.py`),
retraining on a beets library (`retrain*.py`).

A new way of training end to end is a module here. Commands should only parse arguments and call one
(`fit.py` is `genreclass-train fit`; `genreclass-train head` runs `musicnn_recipe.py`).
"""
