"""Notifications have no jobs of their own (they are messages, run by the messaging
tasks); what a worker process needs is their reporter in the pipeline."""

from omnirelay.notifications import service

service.install()
