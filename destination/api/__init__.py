"""HTTP routes: ingest, the RudderStack transformer protocol, dry run, admin."""
