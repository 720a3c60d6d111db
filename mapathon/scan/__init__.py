"""Paper comes back: photos and scans of atlas pages, found again and georeferenced offline.

``page.py`` holds :class:`ScannedPage`, what a placed photo gives to the rest (marks extraction,
GeoTIFF writing); ``register.py`` finds the page in a photo; ``run.py`` is what ``mapathon scan`` calls.
"""
