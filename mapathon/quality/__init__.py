"""Quality checks and credit for merged mapathon data.

* :mod:`.features` reads any OSM file (JOSM ``.osm``, ``.osc``, ``.osm.pbf``)
  into arrays of building polygons, highway lines and the ways a check needs,
  with libosmium (pyosmium) doing the node locations and multipolygon assembly.
* :mod:`.checks` finds what mapathon validators look for (duplicate and
  overlapping buildings, unclosed and self-intersecting areas, untagged
  ways, buildings crossing highways, buildings not square, tiny buildings),
  vectorised with shapely 2 and an STRtree.
* :mod:`.where` says which task and village a place falls in, and which
  volunteer contributed an object (merge result, submitted file or ``user``).
* :mod:`.credit` counts each volunteer's, task's and village's work in a merge.
* :mod:`.report_html` writes the self-contained HTML page of both.
"""

from .checks import CheckResult, Finding, check_file  # noqa: F401
