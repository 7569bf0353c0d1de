"""pipelines: code that sequences steps (load data, compute features, train, evaluate, export) into a run:
a network trained from scratch (`fit.py`), a musicnn head from a recipe (`musicnn_recipe.py`),
retraining on a beets library (`retrain_library.py`, which runs `retrain.py` with
`retrain_head.py` or `retrain_network.py`).

A new way of training end to end is a module here. Commands should only parse arguments and call one
(`genreclass-train fit` runs `fit.py`, `genreclass-train head` `musicnn_recipe.py`, `beet genreclass-train`
`retrain_library.py`).
"""
