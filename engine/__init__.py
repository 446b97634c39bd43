"""Flowyard's pure domain: workflow documents, validation, expressions, planning. No I/O."""
