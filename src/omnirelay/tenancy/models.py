"""Tenancy tables (filled in by the tenancy work)."""
