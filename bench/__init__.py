"""`make bench`: Kyso's numbers next to baselines measured in the same run."""
