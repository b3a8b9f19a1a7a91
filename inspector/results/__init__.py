"""Traceability: result records, the image archive and the review queue."""
