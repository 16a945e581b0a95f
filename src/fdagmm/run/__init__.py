"""Running experiments: compose a run from the config and dispatch it to a backend; follow a sweep."""
