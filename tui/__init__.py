"""aitop: top for AI model containers."""

__version__ = "0.1.0"
