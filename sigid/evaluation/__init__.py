"""Evaluating trained models: the test pass, the literature's protocols and the shortcut probe."""
