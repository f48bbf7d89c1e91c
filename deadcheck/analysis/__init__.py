"""Judge results: findings from statistics, and the comparison of two reports."""
