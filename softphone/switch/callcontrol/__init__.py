"""softphone/switch/callcontrol."""
