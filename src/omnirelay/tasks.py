"""Imports every domain's ``tasks`` module so that their handlers are registered."""

from omnirelay.callbacks import tasks as callback_tasks
from omnirelay.contacts import tasks as contact_tasks
from omnirelay.gateway import tasks as gateway_tasks
from omnirelay.messaging import tasks as messaging_tasks
from omnirelay.notifications import tasks as notification_tasks
from omnirelay.telegram import tasks as telegram_tasks
from omnirelay.templates import tasks as template_tasks

__all__ = [
    "callback_tasks",
    "contact_tasks",
    "gateway_tasks",
    "messaging_tasks",
    "notification_tasks",
    "telegram_tasks",
    "template_tasks",
]
