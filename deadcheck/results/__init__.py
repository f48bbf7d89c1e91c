"""What a recording saw, and what analysis made of it, as frozen data."""
