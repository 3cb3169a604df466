"""Messages: accepting, dispatching and tracking them."""
