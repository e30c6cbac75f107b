"""The Memory OS (DESIGN §5): self-definition, notebook, retrieved and window sectors."""
