"""Call-backs (seed 003): profiles, options (queues), questions, scheduling, the call engine."""
