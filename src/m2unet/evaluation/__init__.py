"""Evaluation: metrics over confusion counts, curves, figures, reports."""
