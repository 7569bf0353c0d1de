"""pipelines: code that sequences steps (load data, compute features, train, evaluate, export) into a run:
any architecture of the registry trained from a recipe (`fit.py`: both bundled models), retraining on a
beets library (`retrain_library.py`, which runs `retrain_estimated.py`: the cross-validated estimate of
`retrain_cv.py`, then the model from every track, by `retrain.py`'s methods `retrain_head.py` or `retrain_network.py`).

A new way of training end to end is a module here. Commands should only parse arguments and call one
(`genreclass-train fit` runs `fit.py`, `beet genreclass-train` `retrain_library.py`).
"""
