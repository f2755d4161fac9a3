"""The provider contract suite: every trigger provider must pass the same tests."""
