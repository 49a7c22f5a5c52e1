"""Declarative field mapping: specs loaded from mappings/, applied by a small engine."""
