"""Training: `run(cfg)`, its setting checks and report, callbacks, seeding, transfer,
the writer branch and ensembles."""
