"""gainsight-destination: deliver CDP events (identify, group, track) into Gainsight CS."""

__version__ = "0.1.0"
