"""Survey answers conflated into the merge (``mapathon survey merge``).

Each submission (:class:`mapathon.survey.store.Submission`: a GPS point, its accuracy, OpenStreetMap
tags, maybe the feature the surveyor picked on the form's map) is matched with the project's data:

1. the feature the surveyor picked (``node/123``), if the data has it;
2. else the nearest feature of the same kind (water points: the kinds of
   :func:`mapathon.quality.credit.water_kind`, dug wells, wells with a pump and boreholes counting as one
   kind since a surveyor often learns there is a pump) within the GPS accuracy (the submission's
   ``accuracy_m``, default 10 m). It is a match only when it is clearly the nearest: no other feature of
   that kind is within its distance plus the accuracy. Otherwise the submission is *ambiguous* (two wells
   a few metres apart) and becomes a finding, unless the names or refs (compared fuzzily with rapidfuzz)
   single one out;
3. nothing of that kind within the accuracy: a new feature, unless one lies within twice the accuracy
   (a finding: the same well seen with a poor GPS fix, or another one?).

Tags the feature lacks are added; equal values (names and refs compared fuzzily) change nothing; a
*different* value is never overwritten: it is a finding, kept for review. Tags that do not belong in
OpenStreetMap (people's names, phone numbers, e-mails) stay in the project's submissions and never reach
a file.

The result is one JOSM file per surveyor, handed to :func:`mapathon.osm.submit.submit` like a
volunteer's file: the next ``mapathon merge`` applies the same conflict, upload-file and credit rules,
and surveyors are credited. Submissions already conflated (their instance ids are in the event log) are
left out of later runs.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import shapely

from ..errors import MapathonError
from ..osm.readers import NODE, OsmObject
from ..quality.credit import poi_type, water_kind

DEFAULT_ACCURACY_M = 10.0
MIN_ACCURACY_M = 3.0  # a phone saying "1 m" is not believed closer than this
NAME_SCORE = 85  # rapidfuzz score from which two names or refs are "the same"
RIVAL_MARGIN = 0.5  # another feature no farther than the nearest plus this share of the accuracy: ambiguous
EVENT = "survey.merge"

#: Keys that never go to OpenStreetMap: people and ways to reach them.
PRIVATE_KEYS = frozenset({"phone", "mobile", "fax", "email", "surveyor", "respondent", "interviewee", "caretaker",
                          "owner", "person", "informant", "contact:name", "operator:person", "responsible"})
_PRIVATE_PARTS = ("phone", "mobile", "email", "whatsapp")
_PRIVATE_PREFIX = ("contact:", "survey:", "odk:", "meta:")
_PHONE = re.compile(r"(?:\+?\d[\d .\-/]{6,}\d)")
_FUZZY_KEYS = ("name", "ref", "name:fr", "name:bm", "alt_name")
#: Keys that set the kind of a feature (compared by the match, not as values).
_WELLS = frozenset({"well", "well with pump", "borehole"})


def private_key(key: str) -> bool:
    k = key.lower()
    return k in PRIVATE_KEYS or k.startswith(_PRIVATE_PREFIX) or any(p in k for p in _PRIVATE_PARTS)


def public_tags(tags: dict) -> dict:
    """The tags of a submission that may go to OpenStreetMap: no private keys, no phone numbers in values."""
    out = {}
    for k, v in (tags or {}).items():
        if v is None or str(v).strip() == "" or private_key(k):
            continue
        v = str(v).strip()
        if _PHONE.search(v) and sum(c.isdigit() for c in v) >= 8:
            continue
        out[str(k)] = v
    return out


def match_group(tags: dict) -> str | None:
    """What a feature must share with a survey point to match it: its water kind (wells together), else
    its point-of-interest type (``amenity=school``), else None (nothing to match)."""
    wk = water_kind(tags)
    if wk is not None:
        return "water:well" if wk in _WELLS else "water:" + wk
    return poi_type(tags)


def _norm(s: str) -> str:
    from ..names import key

    return key(s)


def same_text(a: str | None, b: str | None) -> bool:
    """Names or refs that are the same but for case, accents, spaces or a typo (rapidfuzz)."""
    if a is None or b is None:
        return False
    from rapidfuzz import fuzz

    na, nb = _norm(a), _norm(b)
    return na == nb or fuzz.ratio(na, nb) >= NAME_SCORE


@dataclass
class Finding:
    """Something a person must look at: the submission, where, what, and the values at stake."""

    kind: str  # "ambiguous" | "uncertain" | "value differs" | "not found" | "not a point"
    instance_id: str
    surveyor: str
    lon: float | None
    lat: float | None
    message: str
    feature: str | None = None  # "node/123"
    candidates: list = field(default_factory=list)
    key: str | None = None
    osm_value: str | None = None
    survey_value: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [])}


@dataclass
class Outcome:
    instance_id: str
    surveyor: str
    result: str  # "matched" | "new" | "unchanged" | "ambiguous" | "uncertain" | "not found"
    feature: str | None = None
    distance_m: float | None = None
    added: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, {})}


@dataclass
class ConflateResult:
    outcomes: list[Outcome]
    findings: list[Finding]
    files: dict  # surveyor -> Path of the JOSM file written (before submission)
    contributions: list = field(default_factory=list)  # submit.Contribution
    skipped: int = 0  # submissions conflated by an earlier run

    def counts(self) -> dict:
        c: dict[str, int] = {}
        for o in self.outcomes:
            c[o.result] = c.get(o.result, 0) + 1
        return c

    def as_dict(self) -> dict:
        return {"counts": self.counts(), "skipped": self.skipped,
                "findings": [f.as_dict() for f in self.findings],
                "contributions": [c.as_dict() for c in self.contributions],
                "outcomes": [o.as_dict() for o in self.outcomes]}


class Candidates:
    """The tagged nodes of a file that a survey point can match, in metres around their centre (STRtree)."""

    def __init__(self, nodes: Sequence[OsmObject]):
        from .. import geo

        self.nodes = [n for n in nodes if n.lon is not None and match_group(n.tags) is not None]
        self.by_id = {n.id: n for n in self.nodes}
        self.index = {n.id: j for j, n in enumerate(self.nodes)}
        self.groups = np.array([match_group(n.tags) for n in self.nodes], dtype=object)
        lon = np.array([n.lon / 1e7 for n in self.nodes], dtype=float)
        lat = np.array([n.lat / 1e7 for n in self.nodes], dtype=float)
        if len(lon):
            self.epsg = geo.utm_epsg(float(np.median(lon)), float(np.median(lat)))
        else:
            self.epsg = None
        self._tr = None
        xy = self.project(lon, lat) if len(lon) else np.zeros((0, 2))
        self.xy = xy
        self.tree = shapely.STRtree(shapely.points(xy)) if len(xy) else None

    def project(self, lon, lat) -> np.ndarray:
        from .. import geo

        if self.epsg is None:
            self.epsg = geo.utm_epsg(float(np.median(lon)), float(np.median(lat)))
        if self._tr is None:
            self._tr = geo.transformer("EPSG:4326", f"EPSG:{self.epsg}")
        x, y = self._tr.transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
        return np.column_stack([x, y])

    @classmethod
    def from_file(cls, path: str | Path) -> "Candidates":
        return cls(tagged_nodes(path, lambda tags: match_group(tags) is not None))


def tagged_nodes(path: str | Path, keep) -> list[OsmObject]:
    """The nodes of an OSM file whose tags *keep* accepts (libosmium reads, Python sees tagged nodes only)."""
    import osmium

    from ..osm.readers import from_osmium

    nodes = []
    try:
        fp = osmium.FileProcessor(str(path), osmium.osm.NODE).with_filter(osmium.filter.EmptyTagFilter())
        for o in fp:
            if keep({t.k: t.v for t in o.tags}):
                nodes.append(from_osmium(o, NODE))
    except RuntimeError as e:
        raise MapathonError(f"{path}: cannot read the OpenStreetMap data ({str(e).splitlines()[0]})") from None
    return nodes


def _accuracy(sub) -> float:
    a = getattr(sub, "accuracy_m", None)
    try:
        a = float(a) if a is not None else None
    except (TypeError, ValueError):
        a = None
    if a is None or not np.isfinite(a) or a <= 0:
        return DEFAULT_ACCURACY_M
    return max(a, MIN_ACCURACY_M)


def _picked(sub) -> tuple[str, int] | None:
    p = getattr(sub, "picked_feature", None)
    if not p:
        return None
    m = re.fullmatch(r"\s*(node|way|relation)[/ ]?(-?\d+)\s*", str(p))
    return (m.group(1), int(m.group(2))) if m else None


def _ref(n: OsmObject) -> str:
    return f"node/{n.id}"


def match(subs: Sequence, cands: Candidates) -> list[tuple[str, object, float | None, list]]:
    """For each submission: ("matched", node, distance) | ("new", None) | ("ambiguous"|"uncertain", None, d,
    candidate nodes) | ("not found", picked ref) | ("no point", None). Vectorised: one STRtree query."""
    n = len(subs)
    out: list = [None] * n
    tags = [public_tags(getattr(s, "tags", {}) or {}) for s in subs]
    groups = [match_group(t) for t in tags]
    has_pt = np.array([s.lon is not None and s.lat is not None for s in subs], dtype=bool)
    acc = np.array([_accuracy(s) for s in subs], dtype=float)
    xy = np.full((n, 2), np.nan)
    if has_pt.any():
        idx = np.flatnonzero(has_pt)
        xy[idx] = cands.project([subs[i].lon for i in idx], [subs[i].lat for i in idx])
    near: dict[int, list[int]] = {}
    if cands.tree is not None and has_pt.any():
        idx = np.flatnonzero(has_pt)
        pi, cj = cands.tree.query(shapely.points(xy[idx]), predicate="dwithin", distance=2 * acc[idx])
        for a, b in zip(idx[pi].tolist(), cj.tolist()):
            near.setdefault(a, []).append(b)
    for i, s in enumerate(subs):
        picked = _picked(s)
        if picked is not None:
            kind, oid = picked
            node = cands.by_id.get(oid) if kind == "node" else None
            if node is None:
                out[i] = ("not found", f"{kind}/{oid}", None, [])
            else:
                d = float(np.hypot(*(cands.xy[cands.index[oid]] - xy[i]))) if has_pt[i] else None
                out[i] = ("matched", node, d, [])
            continue
        if not has_pt[i]:
            out[i] = ("no point", None, None, [])
            continue
        g = groups[i]
        js = [j for j in near.get(i, []) if cands.groups[j] == g] if g is not None else []
        if not js:
            out[i] = ("new", None, None, [])
            continue
        d = np.hypot(*(cands.xy[js] - xy[i]).T)
        order = np.argsort(d, kind="stable")
        js = [js[k] for k in order]
        d = d[order]
        r = acc[i]
        if d[0] > r:
            out[i] = ("uncertain", None, float(d[0]), [cands.nodes[j] for j in js])
            continue
        rivals = [k for k in range(1, len(js)) if d[k] <= max(r, d[0] + RIVAL_MARGIN * r)]
        if not rivals:
            out[i] = ("matched", cands.nodes[js[0]], float(d[0]), [])
            continue
        close = [js[0]] + [js[k] for k in rivals]
        # the names or refs may single one out
        named = [j for j in close if any(tags[i].get(k) and same_text(tags[i][k], cands.nodes[j].tags.get(k))
                                         for k in _FUZZY_KEYS)]
        if len(named) == 1:
            out[i] = ("matched", cands.nodes[named[0]], float(np.hypot(*(cands.xy[named[0]] - xy[i]))), [])
            continue
        out[i] = ("ambiguous", None, float(d[0]), [cands.nodes[j] for j in close])
    return out


def _same_value(k: str, a: str, b: str) -> bool:
    if a == b:
        return True
    if k in _FUZZY_KEYS:
        return same_text(a, b)
    return a.strip().lower() == b.strip().lower()


def _kind_keys(tags: dict) -> set:
    return {k for k in ("man_made", "amenity", "natural", "water_well", "water_source") if k in tags}


def conflate(subs: Sequence, cands: Candidates) -> tuple[dict[str, list[OsmObject]], list[Outcome], list[Finding]]:
    """Match *subs* with *cands* and work out each surveyor's changes (JOSM objects), outcomes and findings."""
    matches = match(subs, cands)
    per: dict[str, dict[int, OsmObject]] = {}
    outcomes: list[Outcome] = []
    findings: list[Finding] = []
    next_new = -1
    for s, (res, node, dist, others) in zip(subs, matches):
        who = str(getattr(s, "surveyor", "") or "surveyor")
        iid = str(s.instance_id)
        tags = public_tags(getattr(s, "tags", {}) or {})
        where = dict(instance_id=iid, surveyor=who, lon=s.lon, lat=s.lat)
        if res == "no point":
            outcomes.append(Outcome(iid, who, "not found"))
            findings.append(Finding("not a point", message=f"submission {iid} by {who} has no GPS point and picked "
                                    "no feature: nothing to place", **where))
            continue
        if res == "not found":
            outcomes.append(Outcome(iid, who, "not found", node))
            findings.append(Finding("not found", feature=node, message=f"submission {iid} by {who} picked {node}, "
                                    "which the data has not (or not as a point): kept for review", **where))
            continue
        if res in ("ambiguous", "uncertain"):
            refs = [_ref(o) for o in others]
            outcomes.append(Outcome(iid, who, res, distance_m=round(dist, 1)))
            if res == "ambiguous":
                msg = (f"submission {iid} by {who}: {len(refs)} features of the same kind within "
                       f"{_accuracy(s):.0f} m ({', '.join(refs[:5])}): which one? Pick it on the form, or merge by hand")
            else:
                msg = (f"submission {iid} by {who}: nothing within the GPS accuracy ({_accuracy(s):.0f} m) but "
                       f"{refs[0]} at {dist:.0f} m: the same feature, or a new one? Not merged")
            findings.append(Finding(res, candidates=refs, message=msg, **where))
            continue
        mine = per.setdefault(who, {})
        if res == "new":
            if not tags or match_group(tags) is None:
                outcomes.append(Outcome(iid, who, "not found"))
                findings.append(Finding("not found", message=f"submission {iid} by {who}: no feature picked and no "
                                        "kind of feature in its answers: nothing to create", **where))
                continue
            o = OsmObject(NODE, next_new, None, True, "create", dict(sorted(tags.items())),
                          round(s.lon * 1e7), round(s.lat * 1e7))
            mine[next_new] = o
            next_new -= 1
            outcomes.append(Outcome(iid, who, "new", f"node/{o.id}", added=dict(o.tags)))
            continue
        # matched an existing node
        if node.id <= 0:
            outcomes.append(Outcome(iid, who, "unchanged", _ref(node), dist))
            findings.append(Finding("value differs", feature=_ref(node), message=f"submission {iid} by {who} matches "
                                    f"{_ref(node)}, a feature not uploaded yet: its answers are kept for review",
                                    **where))
            continue
        cur = mine.get(node.id)
        base_tags = dict(cur.tags if cur is not None else node.tags)
        added = {}
        for k, v in tags.items():
            old = base_tags.get(k)
            if old is None:
                if k in ("man_made", "amenity", "natural") and _kind_keys(node.tags):
                    continue  # the kind comes from the data; the match said it is the same kind
                base_tags[k] = v
                added[k] = v
            elif not _same_value(k, old, v):
                if k == "check_date" and v > old:
                    base_tags[k] = v
                    added[k] = v
                    continue
                findings.append(Finding("value differs", feature=_ref(node), key=k, osm_value=old, survey_value=v,
                                        message=f"submission {iid} by {who} says {k}={v} for {_ref(node)}, the data "
                                        f"says {k}={old}: kept for review, not changed", **where))
        d = None if dist is None else round(dist, 1)
        if added:
            o = node.copy()
            o.tags = dict(sorted(base_tags.items()))
            o.action = "modify"
            mine[node.id] = o
            outcomes.append(Outcome(iid, who, "matched", _ref(node), d, added))
        else:
            outcomes.append(Outcome(iid, who, "unchanged", _ref(node), d))
    return {w: list(objs.values()) for w, objs in per.items() if objs}, outcomes, findings


def josm_bytes(objects: Iterable[OsmObject]) -> bytes:
    """One surveyor's changes as the JOSM XML a volunteer would hand in."""
    from ..osm.writers import write_josm

    buf = io.BytesIO()
    write_josm(buf, list(objects))
    return buf.getvalue()


def conflated_ids(project) -> set[str]:
    """Instance ids of the submissions earlier runs conflated (from the event log)."""
    done: set[str] = set()
    for (data,) in project.conn.execute("SELECT data FROM events WHERE action = ?", (EVENT,)):
        try:
            done.update(json.loads(data or "{}").get("instances", []))
        except ValueError:
            continue
    return done


def _slug(name: str) -> str:
    from ..names import key

    return re.sub(r"[^a-z0-9]+", "-", key(name)).strip("-") or "surveyor"


def survey_merge(project, submissions: Sequence | None = None, *, base: str | Path | None = None,
                 actor: str = "organizer", again: bool = False) -> ConflateResult:
    """Conflate the project's submissions (or *submissions*) with its latest data (or *base*) and hand each
    surveyor's changes to the merge as a contribution. Findings go to the event log with the run."""
    from ..osm.submit import latest_data, submit

    if submissions is None:
        from .store import list_submissions

        submissions = list_submissions(project)
    data = Path(base) if base is not None else latest_data(project)
    if not data.is_file():
        raise MapathonError(f"{data}: no such OpenStreetMap file")
    done = set() if again else conflated_ids(project)
    todo = [s for s in submissions if str(s.instance_id) not in done]
    cands = Candidates.from_file(data)
    changes, outcomes, findings = conflate(todo, cands)
    result = ConflateResult(outcomes, findings, {}, skipped=len(submissions) - len(todo))
    with tempfile.TemporaryDirectory(prefix="mapathon-survey-") as tmp:
        for who in sorted(changes):
            path = Path(tmp) / f"survey-{_slug(who)}.osm"
            path.write_bytes(josm_bytes(changes[who]))
            result.files[who] = path.name
            result.contributions += submit(project, [path], who, actor=actor)
    if todo:
        with project.transaction():
            project.record(actor=actor, action=EVENT, data={
                "instances": [str(s.instance_id) for s in todo], "counts": result.counts(),
                "contributions": [c.id for c in result.contributions],
                "findings": [f.as_dict() for f in findings]})
    return result


def findings_geojson(findings: Sequence[Finding]) -> dict:
    feats = []
    for f in findings:
        geom = {"type": "Point", "coordinates": [f.lon, f.lat]} if f.lon is not None else None
        feats.append({"type": "Feature", "geometry": geom, "properties": f.as_dict()})
    return {"type": "FeatureCollection", "features": feats}
