"""Datasets: named, immutable, versioned collections of files that jobs read."""
