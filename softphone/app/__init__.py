"""softphone/app."""
