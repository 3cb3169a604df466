"""Messenger users (a Viber bot's, a VK community's): who they are in the CRM, and what
their providers' callbacks change (statuses, replies)."""
