"""Telegram bots of an organization's ``telegram`` connections: inbound updates (webhook
or long polling), the chat of a contact, connecting the bot (docs/channels/telegram.md).
The Bot API calls themselves are in channels/telegram.py (no database there)."""
