"""Merging volunteers' OSM files, optionally on top of a base extract.

The package is split along the steps of a merge:

* :mod:`.model`: what a merge takes and gives (:class:`InputSpec`,
  :class:`MergeResult` and its changes and conflicts);
* :mod:`.reading`: reading the inputs (many files in a forked helper);
* :mod:`.base`: the reads of the base extract (C++ filters, a forked helper);
* :mod:`.rules`: the merge rules (renumbering, three-way merge of edits,
  deletions, duplicates) and :func:`plan_merge`;
* :mod:`.writing`: the snapshot, upload and JOSM files, and :func:`merge`.

The rules are described in :mod:`mapathon.osm.merge.rules` (and, for
organizers, in ``docs/merging.md``).
"""

from .model import BadInput, Change, Conflict, InputFile, InputSpec, MergeResult, Origin
from .rules import plan_merge
from .writing import check_outputs, merge, write_merge

__all__ = ["BadInput", "Change", "Conflict", "InputFile", "InputSpec", "MergeResult", "Origin", "check_outputs",
           "merge", "plan_merge", "write_merge"]
