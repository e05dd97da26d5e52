"""Context fit: how many input tokens each conversation holds for the model that continues it.

`encoding` loads `o200k_base` offline, `models` is the table of model limits, `count` counts
items, `fit` applies the limit and the `oversize` policy, `figures` sums a job up, and `exact`
asks a target for its own count.
"""
