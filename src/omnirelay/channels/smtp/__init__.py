"""The ``smtp`` provider of the ``email`` channel (docs/channels/email.md): settings,
composing and signing messages, the error table, the adapter; parsing what comes back."""
