"""SMS over SMPP 3.4: settings, encoding, receipts and the ESME session (no database)."""
