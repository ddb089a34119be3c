"""selflearn."""
