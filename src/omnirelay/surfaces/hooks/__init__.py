"""Inbound provider webhooks (Telegram, Viber, VK, ...), mounted at /hooks."""
