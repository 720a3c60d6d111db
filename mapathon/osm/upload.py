"""One upload file per volunteer, so that the credit reaches OpenStreetMap.

``merge --upload-per-volunteer DIR`` splits the merge's changes (what
``--upload`` writes as one osmChange) into one osmChange per volunteer,
written by the same :class:`mapathon.osm.writers.OscWriter`, plus a short
guide per volunteer and a ``README.md`` for the organizer. Each volunteer
uploads their own file from JOSM with their own account, so their work
shows in their OpenStreetMap profile and in the Missing Maps statistics.

The rules (``docs/merging.md`` has the organizer's version):

**Who.** Every change goes to the volunteer credited for it: the volunteer
of the input whose copy the merge kept (for identical edits and collapsed
duplicates, the first input, which is also who drew it first). Changes from
files of no volunteer (the organizer's own fixes, or files merged outside a
project) go to a file of their own, ``organizer``.

**Self-contained files.** New objects keep the merge's negative ids, and
one negative id is one new object in all the files: no new object is in two
files. But JOSM resolves a negative id only inside the file it reads (it
refuses a way whose new node is not in the file), and OpenStreetMap gives
the real ids only on upload, so a later file could never refer to a new
object of an earlier one. So every object that uses a new object is put in
the same file as that object: objects linked through new objects (Fanta's
way through the well Awa drew first, collapsed with Fanta's copy) form a
group, and the whole group goes to the file of the volunteer who comes first
(submission order). Such objects are listed in both volunteers' guides.

**Order.** Files are numbered (``01-awa-traore.osc``, ``02-...``) in
submission order, except where one file must wait for another: a deletion of
an existing object that another file's change stops using (a node taken out
of a way) can only be uploaded after that change, so the file with the
change gets the smaller number, and the README and the guide say which file
waits for which. If two files would have to wait for each other, the
deletion moves into the file of the change it waits for. So uploading the
files in the order of their numbers always works, and a file that waits for
none can be uploaded alone, at any time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import MapathonError
from ..fsutil import atomic_path
from ..i18n import resolve_lang
from ..names import key as name_key, slug
from .readers import KIND_NAMES, NODE, RELATION, WAY, OsmObject
from .writers import OscWriter

README = "README.md"
#: The first line of the README: a folder that starts so was written by us and may be replaced.
MARK = "<!-- written by mapathon merge --upload-per-volunteer: this folder is replaced by the next merge -->"
ORGANIZER_STEM = "organizer"
#: The most changes the OpenStreetMap API takes in one changeset: JOSM must split bigger uploads.
CHANGESET_MAX = 10_000


@dataclass
class GuideInfo:
    """What the guides say beyond the objects: project name, changeset hashtags, OSM user names, imagery."""

    project: str | None = None
    task_names: dict[str, str] = field(default_factory=dict)  # task key as the merge has it -> its number
    hashtags: list[str] = field(default_factory=lambda: ["#mapathon"])
    osm_users: dict[str, str] = field(default_factory=dict)  # volunteer name key -> OSM user name
    source: str | None = None  # the imagery the volunteers traced (changeset source)
    lang: str = "en"


def guide_info(project=None, lang: str | None = None) -> GuideInfo:
    """What the guides say: the project's hashtags (as ``mapathon josm`` uses them), volunteers' OSM users,
    default imagery; *lang* (en, fr) or the project's ``lang``, else English. No project: the defaults."""
    lang = resolve_lang(project, lang)
    if project is None:
        return GuideInfo(lang=lang)
    from ..imagery import editors, sources
    from ..tasks import volunteers
    from .submit import list_contributions

    try:
        source = sources.get(project).title
    except MapathonError:
        source = None
    return GuideInfo(project=project.name, hashtags=editors.hashtags(project),
                     osm_users={name_key(v.name): v.osm_user for v in volunteers.list_all(project) if v.osm_user},
                     source=source, lang=lang,
                     task_names={str(c.task): str(c.task_id) for c in list_contributions(project)
                                 if c.task and c.task_id is not None})


@dataclass
class UploadFile:
    """One volunteer's upload file (or the organizer's) and what the README and guide say about it."""

    number: int
    volunteer: str | None  # None: changes of no volunteer
    stem: str  # "01-awa-traore"
    changes: list[OsmObject]
    tasks: list[str] = field(default_factory=list)
    after: list[int] = field(default_factory=list)  # numbers of the files to upload before this one
    joined: list[tuple[str, int, str | None]] = field(default_factory=list)  # (kind, id, volunteer): others' objects here
    elsewhere: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, id, file number): own objects elsewhere
    osm_user: str | None = None

    @property
    def osc(self) -> str:
        return self.stem + ".osc"

    @property
    def guide(self) -> str:
        return self.stem + ".md"

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "modify": 0, "delete": 0}
        for o in self.changes:
            out[o.action if o.visible else "delete"] += 1
        return out

    def as_dict(self) -> dict:
        return {"number": self.number, "volunteer": self.volunteer, "osm_user": self.osm_user, "file": self.osc,
                "guide": self.guide, **self.counts(), "after": self.after, "tasks": self.tasks,
                "joined": len(self.joined), "elsewhere": len(self.elsewhere)}


# -- planning --------------------------------------------------------------------------------------------


def _new_refs(o: OsmObject) -> Iterator[tuple[str, int]]:
    """The new objects (negative ids) an object uses."""
    if not o.visible:
        return
    if o.kind == WAY:
        for r in o.refs:
            if r < 0:
                yield (NODE, r)
    elif o.kind == RELATION:
        for t, r, _role in o.members:
            if r < 0:
                yield (t, r)


def _uses(o: OsmObject | None) -> set[tuple[str, int]]:
    if o is None or not o.visible:
        return set()
    if o.kind == WAY:
        return {(NODE, r) for r in o.refs}
    if o.kind == RELATION:
        return {(t, r) for t, r, _role in o.members}
    return set()


def plan_uploads(result) -> list[UploadFile]:
    """Split a :class:`~mapathon.osm.merge.MergeResult`'s changes into numbered upload files (see the module)."""
    changes = result.changes
    objs = {(c.obj.kind, c.id): c.obj for c in changes}
    # the files: one per volunteer (by name key), in the order of their first input
    group_of: dict[tuple[str, int], str | None] = {}
    names: dict[str | None, str | None] = {}
    rank: dict[str | None, int] = {}
    tasks: dict[str | None, list[str]] = {}
    for inp in result.inputs:
        g = name_key(inp.volunteer) if inp.volunteer else None
        names.setdefault(g, inp.volunteer)
        rank.setdefault(g, inp.index)
        if inp.task and str(inp.task) not in tasks.setdefault(g, []):
            tasks[g].append(str(inp.task))
    for c in changes:
        v = c.input.volunteer
        group_of[(c.obj.kind, c.id)] = name_key(v) if v else None

    # objects linked through new objects go together, to the first volunteer's file
    parent: dict = {}

    def find(k):
        root = k
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(k, k) != root:
            parent[k], k = root, parent[k]
        return root

    for k, o in objs.items():
        for r in _new_refs(o):
            if r in objs:
                a, b = find(k), find(r)
                if a != b:
                    parent[a] = b
    members: dict = {}
    for k in {*parent, *parent.values()}:
        members.setdefault(find(k), []).append(k)
    joined: list[tuple[tuple[str, int], str | None, str | None]] = []  # (object, from group, to group)
    for keys in members.values():
        groups = {group_of[k] for k in keys}
        if len(groups) < 2:
            continue
        first = min(groups, key=lambda g: rank[g])
        for k in keys:
            if group_of[k] != first:
                joined.append((k, group_of[k], first))
                group_of[k] = first

    # deletions of existing objects that another file's change stops using: that file first
    deleted = {k for k, o in objs.items() if not o.visible and k[1] > 0}
    pinned: set = set()
    while True:
        waits: dict[str | None, dict[str | None, list]] = {}  # file -> files it waits for -> deletions
        if deleted:
            for k, o in objs.items():
                if o.kind == NODE or k[1] < 0:
                    continue
                freed = (_uses(result.base_object(o.kind, o.id)) - _uses(o)) & deleted
                for d in freed:
                    if group_of[d] != group_of[k]:
                        waits.setdefault(group_of[d], {}).setdefault(group_of[k], []).append((d, k))
        order, stuck = _order(list(rank), rank, waits)
        if not stuck:
            break
        # files that would wait for each other: a deletion goes to the file of the change it waits for
        moved = False
        for g in sorted(stuck, key=lambda g: rank[g]):
            for before, pairs in sorted(waits.get(g, {}).items(), key=lambda kv: rank[kv[0]]):
                if before not in stuck:
                    continue
                for d, _k in pairs:
                    if d not in pinned:
                        joined.append((d, group_of[d], before))
                        group_of[d] = before
                        pinned.add(d)
                        moved = True
                break
            if moved:
                break
        if not moved:  # cannot happen with deletions pinned one by one; keep going in submission order
            order = order + sorted(stuck, key=lambda g: rank[g])
            break

    by_group: dict[str | None, list[OsmObject]] = {g: [] for g in rank}
    for c in changes:
        by_group[group_of[(c.obj.kind, c.id)]].append(c.obj)
    order = [g for g in order if by_group[g]]
    number = {g: i + 1 for i, g in enumerate(order)}
    width = max(2, len(str(len(order))))
    files = []
    used_stems: set[str] = set()
    for g in order:
        base = slug(names[g]) if g is not None else ORGANIZER_STEM
        if g is not None and base == ORGANIZER_STEM:
            base = "volunteer-" + base
        s, n = base, 2
        while s in used_stems:
            s, n = f"{base}-{n}", n + 1
        used_stems.add(s)
        after = sorted({number[b] for b in waits.get(g, {}) if b in number})
        files.append(UploadFile(number[g], names[g], f"{number[g]:0{width}d}-{s}", by_group[g], tasks.get(g, []),
                                after))
    by_number = {f.number: f for f in files}
    for k, src, dest in joined:
        if group_of[k] != dest or dest not in number:
            continue
        by_number[number[dest]].joined.append((KIND_NAMES[k[0]], k[1], names.get(src)))
        if src in number:
            by_number[number[src]].elsewhere.append((KIND_NAMES[k[0]], k[1], number[dest]))
    return files


def _order(groups: list, rank: dict, waits: dict) -> tuple[list, set]:
    """Files in submission order, each after those it waits for; (order, files left in a cycle)."""
    left = set(groups)
    order = []
    while left:
        ready = [g for g in left if not any(b in left for b in waits.get(g, {}))]
        if not ready:
            return order, left
        g = min(ready, key=lambda g: rank[g])
        order.append(g)
        left.discard(g)
    return order, set()


# -- writing ---------------------------------------------------------------------------------------------


def check_upload_dir(folder: str | os.PathLike, others: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse a folder that is a file, an input, or holds other things than a previous upload folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise MapathonError(f"{folder}: is a file; --upload-per-volunteer takes a folder (it is created)")
    if not folder.parent.is_dir() and str(folder.parent):
        raise MapathonError(f"{folder}: folder {folder.parent} does not exist")
    for p in others:
        if p is None:
            continue
        p = Path(p)
        if folder.resolve() == p.resolve() or folder.resolve() in p.resolve().parents:
            raise MapathonError(f"{folder}: holds {p}; choose a new folder for the upload files")
    if folder.is_dir() and any(folder.iterdir()) and not _ours(folder):
        raise MapathonError(f"{folder}: is not empty; choose a new folder for the upload files "
                            "(a folder written by an earlier merge is replaced)")


def _ours(folder: Path) -> bool:
    try:
        with open(folder / README, encoding="utf-8") as f:
            return f.readline().strip() == MARK
    except OSError:
        return False


@contextlib.contextmanager
def upload_folder(dest: str | os.PathLike) -> Iterator[Path]:
    """A new folder to fill, put in place of *dest* on success (replacing an earlier upload folder)."""
    dest = Path(dest)
    check_upload_dir(dest)
    old = None
    try:
        with atomic_path(dest, suffix="") as tmp:
            tmp.mkdir()
            yield tmp
            if dest.is_dir() and any(dest.iterdir()):  # an earlier upload folder (checked): set it aside
                old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
                os.replace(dest, old)
    except BaseException:
        if old is not None and not dest.exists():
            os.replace(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_uploads(result, folder: Path, fill: dict | None = None, guide: GuideInfo | None = None) -> list[UploadFile]:
    """Write the upload files, a guide for each and the README into *folder* (which exists, empty)."""
    guide = guide or GuideInfo()
    files = plan_uploads(result)
    for f in files:
        f.osm_user = guide.osm_users.get(name_key(f.volunteer)) if f.volunteer else None
        with open(folder / f.osc, "wb") as out:
            w = OscWriter(out)
            w.write(f.changes, fill)
            w.close()
        (folder / f.guide).write_text(guide_text(f, files, guide), encoding="utf-8")
    (folder / README).write_text(readme_text(files, guide), encoding="utf-8")
    return files


# -- texts -----------------------------------------------------------------------------------------------


def changeset_comment(f: UploadFile, guide: GuideInfo) -> str:
    what = guide.project or "Mapathon"
    if f.tasks:
        word = {"en": ("task", "tasks"), "fr": ("tâche", "tâches")}[guide.lang][len(f.tasks) > 1]
        names = [guide.task_names.get(t, t) for t in f.tasks]
        what += f": {word} {', '.join(names[:12])}" + ("…" if len(names) > 12 else "")
    return f"{what} {' '.join(guide.hashtags)}".strip()


def _counts_text(f: UploadFile, lang: str) -> str:
    c = f.counts()
    if lang == "fr":
        return f"{c['create']} nouveaux objets, {c['modify']} modifiés, {c['delete']} supprimés"
    return f"{c['create']} new objects, {c['modify']} modified, {c['delete']} deleted"


def _who(volunteer: str | None, lang: str) -> str:
    if volunteer is None:
        return "l'organisateur (modifications sans bénévole)" if lang == "fr" else \
            "the organizer (changes of no volunteer)"
    return volunteer


def _objects(items, lang: str) -> str:
    kinds = {"node": ("point", "points"), "way": ("ligne", "lignes") if lang == "fr" else ("way", "ways"),
             "relation": ("relation", "relations")}
    n: dict[str, int] = {}
    for kind, *_rest in items:
        n[kind] = n.get(kind, 0) + 1
    return ", ".join(f"{n[k]} {kinds[k][n[k] > 1]}" for k in kinds if k in n)


def guide_text(f: UploadFile, files: list[UploadFile], guide: GuideInfo) -> str:
    """The Markdown guide of one upload file."""
    by_number = {x.number: x for x in files}
    comment = changeset_comment(f, guide)
    fr = guide.lang == "fr"
    lines = []
    add = lines.append
    if fr:
        add(f"# Envoyer votre travail à OpenStreetMap : {f.osc}")
        add("")
        add(f"Ce fichier contient le travail de **{_who(f.volunteer, 'fr')}** ({_counts_text(f, 'fr')}). "
            "Envoyez-le avec **votre propre compte** OpenStreetMap : votre travail apparaîtra dans votre profil "
            "et dans les statistiques de Missing Maps.")
        if f.osm_user:
            add(f"Votre nom d'utilisateur OpenStreetMap connu de l'organisateur : **{f.osm_user}**.")
    else:
        add(f"# Upload your work to OpenStreetMap: {f.osc}")
        add("")
        add(f"This file holds the work of **{_who(f.volunteer, 'en')}** ({_counts_text(f, 'en')}). "
            "Upload it with **your own** OpenStreetMap account: your work will show in your profile and in "
            "the Missing Maps statistics.")
        if f.osm_user:
            add(f"The organizer knows you on OpenStreetMap as **{f.osm_user}**.")
    add("")
    if f.after:
        before = ", ".join(f"`{by_number[n].osc}` ({_who(by_number[n].volunteer, guide.lang)})" for n in f.after)
        add(("**Attendez** que ce fichier soit envoyé d'abord : " if fr else
             "**Wait** until this file is uploaded first: ") + before + ". "
            + ("Il retire des objets que votre fichier supprime." if fr else
               "It stops using objects that your file deletes."))
        add("")
    if f.joined:
        who = sorted({_who(v, guide.lang) for _k, _i, v in f.joined})
        add((f"Ce fichier contient aussi {_objects(f.joined, 'fr')} de {', '.join(who)} : ils dépendent de "
             "votre travail et doivent être envoyés avec lui." if fr else
             f"This file also holds {_objects(f.joined, 'en')} of {', '.join(who)}: they depend on your work "
             "and must be uploaded with it."))
        add("")
    if f.elsewhere:
        where = sorted({n for _k, _i, n in f.elsewhere})
        one = len(f.elsewhere) == 1
        add((f"{_objects(f.elsewhere, 'fr')} de votre travail {'est' if one else 'sont'} dans " if fr else
             f"{_objects(f.elsewhere, 'en')} of your work {'is' if one else 'are'} in ")
            + ", ".join(f"`{by_number[n].osc}`" for n in where)
            + (" : ils dépendent du travail d'une autre personne et seront envoyés avec lui." if fr else
               ": they depend on someone else's work and are uploaded with it."))
        add("")
    big = len(f.changes) > CHANGESET_MAX
    if fr:
        steps = [
            "Démarrez JOSM. Connectez-vous avec **votre** compte : Édition > Préférences > Serveur OSM "
            "(« Autoriser maintenant »).",
            f"**Fichier > Ouvrir** `{f.osc}`. Les nouveaux objets apparaissent comme nouveaux, les objets "
            "modifiés ou supprimés sont marqués comme tels.",
            "**Fichier > Télécharger des données** sur la même zone, case « Télécharger dans un nouveau calque » "
            "décochée : JOSM montre ainsi les modifications faites sur OpenStreetMap depuis la soirée. "
            "Résolvez les conflits qu'il signale.",
            "Regardez le travail sur l'imagerie, puis **Outils > Validation** et corrigez les erreurs.",
            f"**Envoyer** (la flèche verte vers le haut). Commentaire du groupe de modifications : `{comment}`"
            + (f" ; source : `{guide.source}`." if guide.source else ".")
            + (" Plus de 10 000 modifications : choisissez « Envoyer les données par morceaux » et « Ouvrir "
               "automatiquement un nouveau groupe de modifications »." if big else ""),
            "Envoyez ce fichier **une seule fois** : un second envoi créerait tout en double. Ensuite, "
            "prévenez l'organisateur.",
        ]
    else:
        steps = [
            "Start JOSM. Log in with **your** account: Edit > Preferences > OSM Server (\"Authorize now\").",
            f"**File > Open** `{f.osc}`. New objects show as new; modified and deleted objects are marked as such.",
            "**File > Download data** for the same area, with \"Download as new layer\" unticked: JOSM then shows "
            "what changed on OpenStreetMap since the mapathon. Resolve any conflicts it shows.",
            "Look at the work over the imagery, then **Tools > Validation** and fix the errors.",
            f"**Upload** (the green up arrow). Changeset comment: `{comment}`"
            + (f"; source: `{guide.source}`." if guide.source else ".")
            + (" More than 10,000 changes: choose \"Upload data in chunks of objects\" and \"Open a new "
               "changeset automatically\"." if big else ""),
            "Upload this file **only once**: a second upload would create everything twice. Then tell the "
            "organizer.",
        ]
    add("## " + ("Étapes" if fr else "Steps"))
    add("")
    for i, s in enumerate(steps, 1):
        add(f"{i}. {s}")
    add("")
    return "\n".join(lines)


def readme_text(files: list[UploadFile], guide: GuideInfo) -> str:
    """The organizer's overview: which file is whose, in which order, and the rules."""
    fr = guide.lang == "fr"
    by_number = {x.number: x for x in files}
    lines = [MARK, ""]
    add = lines.append
    if fr:
        add("# Fichiers à envoyer, un par bénévole")
        add("")
        add("Chaque bénévole envoie **son** fichier `.osc` depuis JOSM avec **son propre** compte "
            "OpenStreetMap, en suivant le guide `.md` du même nom. Envoyez les fichiers dans l'ordre de leurs "
            "numéros ; un fichier qui n'attend aucun autre peut être envoyé seul, à tout moment.")
        add("")
        add("N'envoyez **pas** aussi le fichier unique de `--upload`/`--josm` : ce serait tout en double.")
        head = "| n° | fichier | bénévole | compte OSM | nouveaux | modifiés | supprimés | après |"
    else:
        add("# Upload files, one per volunteer")
        add("")
        add("Each volunteer uploads **their** `.osc` file from JOSM with **their own** OpenStreetMap account, "
            "following the `.md` guide of the same name. Upload the files in the order of their numbers; a "
            "file that waits for no other can be uploaded alone, at any time.")
        add("")
        add("Do **not** also upload the single file of `--upload`/`--josm`: everything would be there twice.")
        head = "| # | file | volunteer | OSM account | new | modified | deleted | after |"
    add("")
    add(head)
    add("|---|---|---|---|---|---|---|---|")
    for f in files:
        c = f.counts()
        after = ", ".join(by_number[n].osc for n in f.after) or "-"
        account = f.osm_user or ("?" if f.volunteer else "")
        add(f"| {f.number} | `{f.osc}` | {_who(f.volunteer, guide.lang)} | {account} | {c['create']} | "
            f"{c['modify']} | {c['delete']} | {after} |")
    add("")
    missing = [f.volunteer for f in files if f.volunteer and not f.osm_user]
    if missing:
        add(("Comptes OSM inconnus : " if fr else "OSM accounts not known: ") + ", ".join(missing) + (
            " (`mapathon volunteer add NOM --osm-user UTILISATEUR`)." if fr else
            " (`mapathon volunteer add NAME --osm-user USER`)."))
        add("")
    if fr:
        add("Les nouveaux objets ont des numéros négatifs ; chacun est dans un seul fichier. JOSM ne relie "
            "un numéro négatif qu'à l'intérieur du fichier qu'il ouvre, et OpenStreetMap donne les vrais "
            "numéros à l'envoi : c'est pourquoi le travail d'un bénévole relié à un nouvel objet d'un autre "
            "est dans le fichier de celui qui vient en premier (les guides le disent).")
    else:
        add("New objects have negative ids; each is in one file only. JOSM links a negative id only inside "
            "the file it opens, and OpenStreetMap gives the real ids on upload: that is why a volunteer's work "
            "joined to another's new object is in the file of whoever comes first (the guides say so).")
    add("")
    return "\n".join(lines)
