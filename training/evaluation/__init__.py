"""evaluation: scores of a model's predictions against labels (per window and per track), and their
reports and plots.

A new metric or report goes in `metrics.py`.
"""
