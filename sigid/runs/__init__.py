"""The run folder: where a run writes, the write-once rules, its records, and sweeps."""
