"""pytest entry point of the scibind testkit: fixtures shared by every plugin's tests."""
