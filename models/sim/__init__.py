"""The traffic simulator's parts; the public entry point is ``models.simulator``."""
