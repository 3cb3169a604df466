"""Outgoing connections a tenant can aim: the one SSRF guard (``ssrf``) and the HTTP
connectors that resolve only through it (``connectors``)."""
