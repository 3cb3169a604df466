"""The email channel's inbound side: the SMTP listener that takes replies and bounces for
the organizations' addresses, and what they change (docs/channels/email.md)."""
