"""Benchmarks: each script compares npcvoice against a baseline measured in the same run."""
