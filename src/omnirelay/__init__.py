"""omnirelay: one server for SMS, WhatsApp, Viber, VK, Telegram, email and web chat."""

__version__ = "0.1.0"
