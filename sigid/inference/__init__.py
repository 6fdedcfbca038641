"""Using trained models: the input step, Verifier, Identifier, Gallery and export."""
