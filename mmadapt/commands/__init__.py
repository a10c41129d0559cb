"""The bodies of the CLI commands that are not a pipeline run: compute, swap, data prepare."""
