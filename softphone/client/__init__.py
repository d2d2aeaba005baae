"""softphone/client."""
