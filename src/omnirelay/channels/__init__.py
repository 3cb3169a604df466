"""Channel adapters: plain data in, a result or an error out; they never touch the database."""
