"""Marshmallow schemas of the API bodies; input schemas reject unknown fields (RAISE)."""
