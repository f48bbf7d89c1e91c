"""What the command line does, one call each: load a target, feed it, scan it, scan a series."""
