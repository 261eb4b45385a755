"""Deployments: replicas of a job spec serving one stable address, kept, scaled and rolled out."""
