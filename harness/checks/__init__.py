"""Verdicts of a drill: metrics from the timeline, budgets from config, invariants on ground truth."""
