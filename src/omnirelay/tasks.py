"""Imports every domain's ``tasks`` module so that their handlers are registered."""
