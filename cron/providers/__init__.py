"""Bundled trigger providers: one sub-package per provider, each with a ``plugin.yaml``."""
