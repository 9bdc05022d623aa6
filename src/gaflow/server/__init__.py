"""The local web explorer (``gaflow serve``)."""

from .app import create_app, serve

__all__ = ["create_app", "serve"]
