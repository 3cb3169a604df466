"""Channel connections: an organization's configured channels and their providers."""
