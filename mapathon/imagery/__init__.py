"""Imagery: sources, purchase estimates, an offline MBTiles cache, and editors wired to it.

* :mod:`.sources`  the registry (built-in sources, custom JOSM/Tasking Manager strings, the project's default)
* :mod:`.coverage` which web-mercator tiles cover an area, per zoom (vectorised)
* :mod:`.plan`     area, tile counts, download size and purchase cost
* :mod:`.mbtiles`  the MBTiles 1.3 cache files (``<project>/imagery/<source>.mbtiles``)
* :mod:`.fetch`    the concurrent, resumable downloader (the only module that touches the network)
* :mod:`.importer` tiles delivered on a disk: z/x/y folders, MBTiles, GeoTIFF
* :mod:`.serve`    the cache as XYZ tiles over HTTP
* :mod:`.editors`  JOSM remote-control and iD URLs for a task
"""
