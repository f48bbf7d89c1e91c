"""Change a model where a report says: swap activations, recycle dormant units."""
