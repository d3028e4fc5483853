"""DINO-style detector with a pluggable FFN slot (see docs/architecture.md)."""
