"""Imports every domain's ``tasks`` module so that their handlers are registered."""

from omnirelay.messaging import tasks as messaging_tasks

__all__ = ["messaging_tasks"]
