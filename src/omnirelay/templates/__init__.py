"""Message templates with placeholders and moderation status."""
