"""Contract tests for scibind plugins."""
