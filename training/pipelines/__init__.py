"""pipelines: code that sequences steps (load data, compute features, train, evaluate, export) into a run:
a musicnn head from a recipe (`musicnn_recipe.py`), retraining on a beets library (`retrain*.py`).

A new way of training end to end is a module here. Commands should only parse arguments and call one
(`beet genreclass-train` does; `genreclass-train fit` in `cli.py` still sequences its own steps).
"""
