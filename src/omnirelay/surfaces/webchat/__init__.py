"""The web chat surface: the widget's script and its socket (/webchat)."""
