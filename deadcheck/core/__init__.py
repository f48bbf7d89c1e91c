"""Pure data every layer shares: kinds, errors, findings, thresholds, files and text. No torch."""
