"""The web chat channel: visitors of an organization's site, their sockets and messages."""
