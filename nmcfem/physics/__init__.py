"""Weak forms of the particle physics as pure UFL (no solver plumbing)."""
