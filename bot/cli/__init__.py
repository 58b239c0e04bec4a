"""Command-line tools: generate, check, copy-db."""
