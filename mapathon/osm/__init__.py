"""OpenStreetMap data: reading, merging, checking and writing OSM files."""
