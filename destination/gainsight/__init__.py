"""Gainsight: what to send (plan, signing), how to read answers (outcomes), and the client."""
