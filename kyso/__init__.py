"""Kyso's shell: the `kyso` CLI, the Flask app factory and configuration."""
