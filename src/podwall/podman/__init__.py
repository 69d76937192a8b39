"""Adapters to Podman: reading live state, creating networks, building the test/demo image."""
