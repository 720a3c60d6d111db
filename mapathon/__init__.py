"""mapathon: an offline-first toolkit for mapathons and field mapping on OpenStreetMap."""

__version__ = "0.1.0"
