"""Running experiments: a sweep's progress, tagged job lines and its summary."""
