"""Benchmarks (`make bench`): figures measured in one run, reported as ratios against targets."""
