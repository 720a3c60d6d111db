"""Map rendering with Mapnik: one renderer for the progress map and the paper atlases."""
