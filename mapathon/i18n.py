"""Every word a volunteer, a validator or the commune sees, in English and French.

One catalog for the room server's pages and answers, the progress board, the
projector picture (``status --map``) and the HTML report. The atlas keeps its
own word list (:mod:`mapathon.atlas.i18n`).

A project has a language (``init --lang``, kept in its ``meta`` table, see
:attr:`mapathon.project.Project.lang`); a command's ``--lang`` overrides it
(:func:`resolve_lang`). The room server sends the pages' words as JSON
(``/api/i18n``) and turns refusals into plain sentences in the page's language
(:func:`plain_error`): the browser never sees a command-line flag.
"""

from __future__ import annotations

import re

from .errors import MapathonError

LANGS = ("en", "fr")
DEFAULT = "en"

# key -> {"en": ..., "fr": ...}; "{name}" fields are filled by Words (Python) or t() (the pages' JavaScript).
WORDS: dict[str, dict[str, str]] = {
    # -- task states (web pages, projector, report) -------------------------------------------------------
    "state.READY": {"en": "Ready to map", "fr": "À cartographier"},
    "state.LOCKED_FOR_MAPPING": {"en": "Being mapped", "fr": "En cours de cartographie"},
    "state.MAPPED": {"en": "Mapped, to validate", "fr": "Cartographiée, à valider"},
    "state.LOCKED_FOR_VALIDATION": {"en": "Being validated", "fr": "En cours de validation"},
    "state.VALIDATED": {"en": "Validated", "fr": "Validée"},
    "state.INVALIDATED": {"en": "Needs more mapping", "fr": "À reprendre"},
    "state.BADIMAGERY": {"en": "Bad imagery", "fr": "Image inutilisable"},
    "state.SPLIT": {"en": "Split", "fr": "Divisée"},
    "role.mapper": {"en": "mapper", "fr": "cartographe"},
    "role.validator": {"en": "validator", "fr": "validateur"},
    "role.organizer": {"en": "organizer", "fr": "organisateur"},
    # -- the volunteers' page (mapathon/server/static/index.html, app.js) ------------------------------------
    "page.title": {"en": "Mapathon", "fr": "Mapathon"},
    "page.your_name": {"en": "Your name", "fr": "Votre nom"},
    "page.name_placeholder": {"en": "e.g. Awa T.", "fr": "ex. Awa T."},
    "page.join": {"en": "Join", "fr": "Entrer"},
    "page.signed_in_as": {"en": "Signed in as", "fr": "Vous êtes"},
    "page.sign_out": {"en": "sign out", "fr": "se déconnecter"},
    "page.board_link": {"en": "progress board ↗", "fr": "tableau d'avancement ↗"},
    "page.map_label": {"en": "Task map", "fr": "Carte des tâches"},
    "page.next": {"en": "Give me a task", "fr": "Donnez-moi une tâche"},
    "page.village": {"en": "Village", "fr": "Village"},
    "page.any_village": {"en": "any village", "fr": "n'importe quel village"},
    "page.hint": {"en": "Click a square on the map, or ask for a task.",
                  "fr": "Cliquez sur un carré de la carte, ou demandez une tâche."},
    "page.task": {"en": "Task", "fr": "Tâche"},
    "page.claim": {"en": "Claim this task", "fr": "Prendre cette tâche"},
    "page.validate_claim": {"en": "Claim for validation", "fr": "La prendre pour la valider"},
    "page.step1": {"en": "1. Map it", "fr": "1. Cartographiez-la"},
    "page.josm": {"en": "Open in JOSM", "fr": "Ouvrir dans JOSM"},
    "page.ide": {"en": "Open in iD ↗", "fr": "Ouvrir dans iD ↗"},
    "page.step2": {"en": "2. In JOSM: File › Save As… an .osm file, then hand it in",
                   "fr": "2. Dans JOSM : Fichier › Enregistrer sous… un fichier .osm, puis envoyez-le"},
    "page.upload": {"en": "Hand in the file", "fr": "Envoyer le fichier"},
    "page.step3": {"en": "3. Finished?", "fr": "3. Terminé ?"},
    "page.done": {"en": "Mark as done", "fr": "Marquer comme terminée"},
    "page.release": {"en": "Give it back", "fr": "La rendre"},
    "page.badimagery": {"en": "Bad imagery", "fr": "Image inutilisable"},
    "page.accept": {"en": "Validate ✓", "fr": "Valider ✓"},
    "page.reject": {"en": "Needs more mapping ✗", "fr": "À reprendre ✗"},
    "page.legend": {"en": "Legend", "fr": "Légende"},
    "page.organizer": {"en": "Organizer", "fr": "Organisateur"},
    "page.org_token": {"en": "organizer token", "fr": "code organisateur"},
    "page.org_reset": {"en": "Reset task", "fr": "Remettre à cartographier"},
    "page.org_release": {"en": "Force release", "fr": "Libérer la tâche"},
    "page.org_split": {"en": "Split task", "fr": "Diviser en quatre"},
    "page.org_name": {"en": "volunteer name", "fr": "nom du bénévole"},
    "page.org_grant": {"en": "Make validator", "fr": "Nommer validateur"},
    "page.org_free": {"en": "Free this name", "fr": "Libérer ce nom"},
    "page.language": {"en": "Français", "fr": "English"},  # the link to the other language
    "msg.mapping_by": {"en": "mapping: {name}", "fr": "en cours : {name}"},
    "msg.validating_by": {"en": "validating: {name}", "fr": "en validation : {name}"},
    "msg.mapped_by": {"en": "mapped by {name}", "fr": "cartographiée par {name}"},
    "msg.validated_by": {"en": "validated by {name}", "fr": "validée par {name}"},
    "msg.welcome": {"en": "Welcome, {name}! Click a square or ask for a task.",
                    "fr": "Bienvenue, {name} ! Cliquez sur un carré ou demandez une tâche."},
    "msg.sending_josm": {"en": "Sending the task to JOSM…", "fr": "Envoi de la tâche à JOSM…"},
    "msg.sent_josm": {"en": "Sent to JOSM. If nothing happened: start JOSM and enable Preferences › Remote Control.",
                      "fr": "Envoyé à JOSM. Si rien ne se passe : lancez JOSM et activez "
                            "Préférences › Contrôle à distance."},
    "msg.josm_silent": {"en": "JOSM is not answering: start JOSM and enable Preferences › Remote Control.",
                        "fr": "JOSM ne répond pas : lancez JOSM et activez Préférences › Contrôle à distance."},
    "msg.choose_file": {"en": "Choose the .osm file you saved from JOSM first.",
                        "fr": "Choisissez d'abord le fichier .osm enregistré dans JOSM."},
    "msg.too_large": {"en": "This file is too large to send here; give it to the organizer on a USB stick.",
                      "fr": "Ce fichier est trop gros pour être envoyé ici ; donnez-le à l'organisateur "
                            "sur une clé USB."},
    "msg.already_handed": {"en": "This file was already handed in.", "fr": "Ce fichier a déjà été envoyé."},
    "msg.received": {"en": "Thank you! {file} received ({n} objects). Now mark the task as done.",
                     "fr": "Merci ! {file} est bien reçu ({n} objets). Marquez maintenant la tâche comme terminée."},
    "msg.signed_out": {"en": "Signed out.", "fr": "Vous êtes déconnecté."},
    "msg.type_name": {"en": "Type your name first.", "fr": "Donnez d'abord votre nom."},
    "msg.yours_next": {"en": "Task {id} is yours for 2 hours. Open it in JOSM.",
                       "fr": "La tâche {id} est à vous pour 2 heures. Ouvrez-la dans JOSM."},
    "msg.yours": {"en": "The task is yours for 2 hours. Open it in JOSM.",
                  "fr": "La tâche est à vous pour 2 heures. Ouvrez-la dans JOSM."},
    "msg.validating": {"en": "You are validating this task.", "fr": "Vous validez cette tâche."},
    "msg.done": {"en": "Marked as done. Thank you! Ask for another task.",
                 "fr": "Tâche terminée. Merci ! Demandez-en une autre."},
    "msg.released": {"en": "Task given back.", "fr": "Tâche rendue."},
    "msg.bad": {"en": "Marked as bad imagery.", "fr": "Tâche signalée : image inutilisable."},
    "msg.accepted": {"en": "Validated.", "fr": "Validée."},
    "msg.rejected": {"en": "Sent back for more mapping.", "fr": "Renvoyée pour être reprise."},
    "msg.select_first": {"en": "Select a task first.", "fr": "Choisissez d'abord une tâche."},
    "msg.org_reset": {"en": "Task put back to map.", "fr": "Tâche remise à cartographier."},
    "msg.org_released": {"en": "Lock released.", "fr": "Tâche libérée."},
    "msg.org_split": {"en": "Task split in four.", "fr": "Tâche divisée en quatre."},
    "msg.granted": {"en": "{name} can now validate.", "fr": "{name} peut maintenant valider."},
    "msg.freed": {"en": "{name} can sign in again ({n} sign-in(s) ended).",
                  "fr": "{name} peut se connecter à nouveau ({n} connexion(s) fermée(s))."},
    "msg.unreachable": {"en": "Cannot reach the room server: {error}",
                        "fr": "Le serveur de la salle ne répond pas : {error}"},
    # -- the progress board (board.html, board.js) --------------------------------------------------------
    "board.title": {"en": "progress", "fr": "avancement"},
    "board.mapped": {"en": "mapped", "fr": "cartographié"},
    "board.validated": {"en": "validated", "fr": "validé"},
    "board.active": {"en": "mapping now", "fr": "en cours"},
    "board.villages": {"en": "Villages", "fr": "Villages"},
    "board.volunteers": {"en": "Volunteers", "fr": "Bénévoles"},
    "board.all": {"en": "All", "fr": "Total"},
    "outside": {"en": "(outside villages)", "fr": "(hors des villages)"},
    "board.n_mapped": {"en": "{n} mapped", "fr": "{n} cartographiée(s)"},
    "board.n_validated": {"en": "{n} validated", "fr": "{n} validée(s)"},
    "board.first": {"en": "Be the first to finish a task!", "fr": "Soyez le premier à terminer une tâche !"},
    "board.updated": {"en": "updated {time}", "fr": "mis à jour à {time}"},
    "board.unreachable": {"en": "cannot reach the server: {error}", "fr": "le serveur ne répond pas : {error}"},
    # -- the server's refusals (plain sentences: no command-line flag, no command) ------------------------
    "err.sign_in": {"en": "Sign in first: type your name.", "fr": "Donnez d'abord votre nom."},
    "err.sign_in_again": {"en": "This browser's sign-in is not known here any more; type your name again.",
                          "fr": "Ce navigateur n'est plus connecté ici ; donnez à nouveau votre nom."},
    "err.organizer_only": {"en": "Organizers only: give the organizer token printed when the server started.",
                           "fr": "Réservé aux organisateurs : donnez le code organisateur affiché au "
                                 "démarrage du serveur."},
    "err.is_organizer": {"en": "{name} is an organizer: sign in with the organizer token.",
                         "fr": "{name} est organisateur : connectez-vous avec le code organisateur."},
    "err.signed_in_elsewhere": {
        "en": "{name} is already signed in on another device; choose another name (e.g. add your initial) "
              "or ask the organizer to free this one.",
        "fr": "{name} est déjà connecté sur un autre appareil ; choisissez un autre nom (par exemple avec "
              "votre initiale) ou demandez à l'organisateur de libérer celui-ci."},
    "err.no_organizer": {"en": "The project has no organizer yet: ask for one to be added.",
                         "fr": "Le projet n'a pas encore d'organisateur : demandez qu'on en ajoute un."},
    "err.no_task": {"en": "Task {id}: no such task.", "fr": "Il n'y a pas de tâche {id}."},
    "err.no_tasks_yet": {"en": "The project has no tasks yet.", "fr": "Le projet n'a pas encore de tâches."},
    "err.no_volunteer": {"en": "{name}: no such volunteer.", "fr": "Aucun bénévole ne s'appelle {name}."},
    "err.no_file": {"en": "No such file.", "fr": "Ce fichier n'existe pas."},
    "err.no_imagery_support": {"en": "This installation cannot serve imagery.",
                               "fr": "Cette installation ne sait pas servir d'imagerie."},
    "err.upload_form": {"en": "{file}: send the file itself as the request body, not a form.",
                        "fr": "{file} : envoyez le fichier lui-même, pas un formulaire."},
    "err.upload_large": {"en": "{file}: larger than {mb} MB; hand it to the organizer on a USB stick instead.",
                         "fr": "{file} : plus de {mb} Mo ; donnez-le plutôt à l'organisateur sur une clé USB."},
    "err.upload_empty": {"en": "{file}: the file is empty.", "fr": "{file} : le fichier est vide."},
    "err.name_needed": {"en": "Type your name.", "fr": "Donnez votre nom."},
    "err.name_long": {"en": "A name has at most 80 letters.", "fr": "Un nom a au plus 80 lettres."},
    "err.no_village": {"en": "There is no village named {village}.", "fr": "Aucun village ne s'appelle {village}."},
    "err.did_you_mean": {"en": "Did you mean {close}?", "fr": "Vouliez-vous dire {close} ?"},
    "err.no_villages": {"en": "This project has no villages.", "fr": "Ce projet n'a pas de villages."},
    "err.none_left": {"en": "No task left to map: every task is locked, mapped or finished.",
                      "fr": "Plus aucune tâche à cartographier : toutes sont prises, cartographiées ou finies."},
    "err.none_left_in": {"en": "No task left to map in {village}: every task there is locked, mapped or finished.",
                         "fr": "Plus aucune tâche à cartographier à {village} : toutes sont prises, "
                               "cartographiées ou finies."},
    "err.already_holds": {"en": "{name} already holds task {id} for mapping: finish it or give it back first.",
                          "fr": "{name} a déjà la tâche {id} : terminez-la ou rendez-la d'abord."},
    "err.not_validator": {"en": "Task {id} waits for validation, and {name} is not a validator.",
                          "fr": "La tâche {id} attend d'être validée, et {name} n'est pas validateur."},
    "err.own_work": {"en": "{name} mapped task {id}: nobody validates their own work.",
                     "fr": "{name} a cartographié la tâche {id} : personne ne valide son propre travail."},
    "err.locked_until": {"en": "Task {id} is already locked by {name} until {time} UTC.",
                         "fr": "La tâche {id} est déjà prise par {name} jusqu'à {time} UTC."},
    "err.locked_by": {"en": "Task {id} is locked by {name}; only they or an organizer can do this.",
                      "fr": "La tâche {id} est prise par {name} ; seuls cette personne ou un organisateur "
                            "peuvent le faire."},
    "err.being_validated": {"en": "Task {id}: {name} is validating it.",
                            "fr": "Tâche {id} : {name} est en train de la valider."},
    "err.not_locked": {"en": "Task {id} is not taken by anyone, so there is nothing to do.",
                       "fr": "Personne n'a pris la tâche {id} : il n'y a rien à faire."},
    "err.nothing_to_claim": {"en": "Task {id} cannot be taken: it is finished, split or has bad imagery.",
                             "fr": "La tâche {id} ne peut pas être prise : elle est finie, divisée ou son "
                                   "image est inutilisable."},
    "err.claim_first": {"en": "Task {id}: take it for mapping first.",
                        "fr": "Tâche {id} : prenez-la d'abord pour la cartographier."},
    "err.not_organizer": {"en": "Task {id}: {name} is not an organizer.",
                          "fr": "Tâche {id} : {name} n'est pas organisateur."},
    "err.task_state": {"en": "Task {id} is {state}: this cannot be done now.",
                       "fr": "La tâche {id} est « {state} » : ce n'est pas possible maintenant."},
    "err.file_type": {"en": "{file}: unsupported file type; hand in the .osm file saved from JOSM.",
                      "fr": "{file} : ce type de fichier n'est pas accepté ; envoyez le fichier .osm "
                            "enregistré dans JOSM."},
    "err.file_bad": {"en": "{file}: this file cannot be read ({why}).",
                     "fr": "{file} : ce fichier est illisible ({why})."},
    "err.refused": {"en": "Refused: {detail}", "fr": "Refusé : {detail}"},
    "err.too_large": {"en": "Request too large (at most {what} here).", "fr": "Envoi trop gros (au plus {what} ici)."},
    # -- the projector picture (status --map) ------------------------------------------------------------
    "map.squares": {"en": "{n} squares", "fr": "{n} carrés"},
    "map.mapped": {"en": "mapped {pct} %", "fr": "cartographié {pct} %"},
    "map.validated": {"en": "validated {pct} %", "fr": "validé {pct} %"},
    "map.aoi": {"en": "area of interest", "fr": "zone à cartographier"},
    "map.village_area": {"en": "village area", "fr": "zone du village"},
    "map.attribution": {"en": "© OpenStreetMap contributors", "fr": "© les contributeurs d'OpenStreetMap"},
}

_FIELD = re.compile(r"\{(\w+)\}")


def check_lang(value: str | None, option: str = "--lang") -> str | None:
    """*value* as a language code ('fr', 'en'), None when not given; a clear error otherwise."""
    if value is None:
        return None
    code = value.strip().lower().replace("_", "-").split("-")[0]
    if code not in LANGS:
        raise MapathonError(f"{option} {value}: unknown language; choose one of {', '.join(LANGS)}")
    return code


def resolve_lang(project, override: str | None = None) -> str:
    """The language to speak: *override* (a command's ``--lang``), else the project's, else English."""
    got = check_lang(override)
    if got:
        return got
    if project is not None:
        return project.lang
    return DEFAULT


class Words:
    """``w = Words('fr'); w('map.squares', n=12)``: a catalog entry in one language, fields filled."""

    def __init__(self, lang: str | None = None):
        self.lang = check_lang(lang) or DEFAULT

    def __call__(self, _key: str, **kw) -> str:
        entry = WORDS[_key]
        text = entry.get(self.lang) or entry[DEFAULT]
        return text.format(**kw) if kw else text

    def state(self, state: str) -> str:
        key = f"state.{state}"
        return self(key) if key in WORDS else state

    def role(self, roles: str) -> str:
        """'organizer, validator' in this language."""
        return ", ".join(self(f"role.{r.strip()}") if f"role.{r.strip()}" in WORDS else r
                         for r in roles.split(","))


def catalog(lang: str | None) -> dict[str, str]:
    """Every word in *lang*, as the room server sends it to its pages."""
    w = Words(lang)
    return {k: w(k) for k in WORDS}


# -- the server's refusals in plain words -------------------------------------------------------------------

# Library messages (written for the command line) recognised by their wording; each becomes a plain
# sentence. The patterns follow the messages of tasks.lifecycle, tasks.volunteers, project.village and
# osm.readers; a message none of them knows is still cleaned of flags and commands (see plain_error).
_TASK = r"task (?P<id>\d+) \((?P<key>[^)]*)\) is (?P<state>[A-Z_]+): "
_RULES: list[tuple[re.Pattern, str]] = [(re.compile(p, re.S), k) for p, k in [
    (r"--as: a volunteer name is needed", "err.name_needed"),
    (r"volunteer name .*: at most 80 printable characters", "err.name_long"),
    (r"--village .*?: this project has no named villages", "err.no_villages"),
    (r"--village (?P<village>.+?): no such village", "err.no_village"),
    (r"no task left to map in (?P<village>.+?): ", "err.none_left_in"),
    (r"no task left to map", "err.none_left"),
    (r"(?P<name>.+?) already holds task (?P<id>\d+) \([^)]*\) for mapping", "err.already_holds"),
    (_TASK + r"it waits for validation and (?P<name>.+) is not a validator", "err.not_validator"),
    (_TASK + r"(?P<name>.+) is not a validator", "err.not_validator"),
    (_TASK + r"(?P<name>.+) mapped it; nobody validates their own work", "err.own_work"),
    (_TASK + r"already locked by (?P<name>.+) until (?P<time>.+) UTC", "err.locked_until"),
    (_TASK + r"it is locked by (?P<name>.+?); only they or an organizer", "err.locked_by"),
    (_TASK + r"(?P<name>.+) is validating it", "err.being_validated"),
    (_TASK + r"it is not locked", "err.not_locked"),
    (_TASK + r"there is nothing to claim", "err.nothing_to_claim"),
    (_TASK + r"(only a task locked for mapping|claim it for mapping first)", "err.claim_first"),
    (_TASK + r"(?P<name>.+) is not an organizer", "err.not_organizer"),
    (_TASK, "err.task_state"),
    (r"task (?P<id>\S+): the project has no tasks yet", "err.no_tasks_yet"),
    (r"task (?P<id>\S+): no such task", "err.no_task"),
    (r"--as (?P<name>.+?): no such volunteer", "err.no_volunteer"),
    (r"(?P<file>[^:]+): unsupported file type", "err.file_type"),
]]
_DID_YOU_MEAN = re.compile(r"did you mean (?P<close>.+?)\?")
_FLAG = re.compile(r"(?<![\w-])--[a-z][\w-]*\s?")
_COMMAND = re.compile(r"\s*\((?:[^()]*'mapathon [^']*'[^()]*|[^()]*--[a-z][^()]*)\)|\s*'mapathon [^']*'")


def plain_error(message: str, lang: str | None) -> str:
    """A refusal written for the command line as one plain sentence in *lang*, for a web page."""
    w = Words(lang)
    for pattern, key in _RULES:
        m = pattern.match(message)
        if m is None:
            continue
        fields = m.groupdict()
        if "state" in fields:
            fields["state"] = w.state(fields["state"]).lower()
        out = w(key, **fields)
        close = _DID_YOU_MEAN.search(message)
        if close:
            out += " " + w("err.did_you_mean", close=close["close"])
        return out
    cleaned = _FLAG.sub("", _COMMAND.sub("", message)).strip(" :;,")
    cleaned = cleaned or message
    if w.lang == DEFAULT:
        return cleaned
    return w("err.refused", detail=cleaned)


def fields(key: str) -> set[str]:
    """The {fields} an entry takes (the same in every language; checked by the tests)."""
    return set(_FIELD.findall(WORDS[key][DEFAULT]))
