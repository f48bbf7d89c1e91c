"""Hooks and the function mode on a live model, and the per-unit counters they feed."""
