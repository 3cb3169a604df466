"""SMPP connections at run time: who owns each session, and the bridge between a
session and the database."""
