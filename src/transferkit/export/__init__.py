"""The artifact format: save, load, verify."""
