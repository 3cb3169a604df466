"""Balance and prices per organization."""
