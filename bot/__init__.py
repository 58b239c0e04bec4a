"""A self-hosted Discord bot that turns chat into short AI videos."""

__version__ = "0.1.0"
