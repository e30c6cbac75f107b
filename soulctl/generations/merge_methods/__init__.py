"""Merge methods (DESIGN §6): each a module (ties.py, fold.py, magmax.py) over one protocol
(base.py), found by name in registry.py from recipes/merge.yaml's `method`."""
