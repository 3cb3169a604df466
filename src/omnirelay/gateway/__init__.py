"""The WhatsApp gateway (seed 002): accounts, devices, sending through them, their webhooks."""
