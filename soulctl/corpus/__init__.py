"""Corpus mounts: per-corpus indexes the soul puts on and takes off like outfits (DESIGN §3, §5)."""
