"""Detection: energies, thresholds and metrics; the exported detector; scoring new files."""
