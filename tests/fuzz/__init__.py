"""Fuzz tests: hostile and random input never raises anything but the codec error."""
