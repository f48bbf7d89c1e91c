"""Watch a training run: the Monitor, the Recycler, their trends."""
