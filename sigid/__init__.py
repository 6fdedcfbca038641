"""sigid: offline handwritten signature identification and verification."""

__version__ = "0.1.0"
