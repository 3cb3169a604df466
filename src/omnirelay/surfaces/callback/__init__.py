"""The call-back surface (seed 003), mounted at /3.0."""
