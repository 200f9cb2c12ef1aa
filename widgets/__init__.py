"""Reusable Textual widgets of aitop: they receive data and post messages; they never fetch."""
