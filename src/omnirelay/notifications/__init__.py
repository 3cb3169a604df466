"""Notifications by contact profile (seed 004 ``/user/notifications/send``)."""
