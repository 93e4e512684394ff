"""The search: program database, selection, mutators and the controller."""
