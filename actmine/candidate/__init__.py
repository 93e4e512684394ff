"""Candidate programs: loading their source, probing them before training."""
