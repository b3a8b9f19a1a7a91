"""Peers: outside models trained on the project's own data, to measure the station's models against."""
