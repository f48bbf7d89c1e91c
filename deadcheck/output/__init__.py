"""Show a report: table, Markdown, JSON, plots and TensorBoard."""
