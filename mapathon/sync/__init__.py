"""Offline sync between sites: copies of one project exchange their event logs by file.

* :mod:`.clone`   a copy of the project for another site (new site id)
* :mod:`.bundle`  export and import of sync bundles (zip: manifest with checksums, events, contributions)
* :mod:`.replay`  the tasks rebuilt from all task events in one total order; conflicts between sites

See docs/sync.md for the organizers' view.
"""

from __future__ import annotations

from . import replay
from .bundle import ExportResult, ImportResult, bundle_info, export_bundle, import_bundle, read_bundle
from .clone import clone_project


def list_conflicts(project) -> list[dict]:
    """The changes that could not be applied when sites' logs were merged, oldest first."""
    rows = project.conn.execute(
        """SELECT c.*, t.id AS task_id FROM sync_conflicts c LEFT JOIN tasks t ON t.key = c.task
            ORDER BY c.ts, c.event_id""").fetchall()
    if not rows:
        return []
    names = replay.site_labels(project.conn)
    return [{k: r[k] for k in r.keys() if k != "id"} | {"site_name": names.get(r["site"])} for r in rows]


__all__ = ["ExportResult", "ImportResult", "bundle_info", "export_bundle", "import_bundle", "read_bundle",
           "clone_project", "list_conflicts"]
