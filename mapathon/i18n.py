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
    "page.odk": {"en": "Field survey with ODK Collect", "fr": "Enquête de terrain avec ODK Collect"},
    "page.odk_scan": {"en": "In ODK Collect: add a project, \"Configure with QR code\", scan this code.",
                      "fr": "Dans ODK Collect : ajoutez un projet, « Configurer avec un code QR », scannez ce code."},
    "page.odk_password": {"en": "Survey password:", "fr": "Mot de passe de l'enquête :"},
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
    "page.choose_file": {"en": "Choose the file…", "fr": "Choisir le fichier…"},
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
    "err.unknown_volunteer": {"en": "No volunteer is named {name}.", "fr": "Aucun bénévole ne s'appelle {name}."},
    "err.name_lookalike": {"en": "The name {name} looks like {other}'s but has letters of another alphabet: "
                                 "type it with Latin letters.",
                           "fr": "Le nom {name} ressemble à celui de {other} mais contient des lettres d'un autre "
                                 "alphabet : tapez-le en lettres latines."},
    "err.name_lookalike_plain": {"en": "The name {name} looks like {other}'s on screen: choose a name that differs "
                                       "(add a family name or a number).",
                                 "fr": "Le nom {name} ressemble à celui de {other} à l'écran : choisissez un nom "
                                       "différent (ajoutez un nom de famille ou un numéro)."},
    "err.name_mixed": {"en": "The name {name} mixes Latin letters with look-alike letters of another alphabet: "
                             "type it with Latin letters.",
                       "fr": "Le nom {name} mélange des lettres latines et des lettres d'un autre alphabet qui leur "
                             "ressemblent : tapez-le en lettres latines."},
    "err.not_your_task": {"en": "Task {id} is not yours: only the volunteer who holds or mapped it, a validator or "
                                "an organizer hands in files for it.",
                          "fr": "La tâche {id} n'est pas la vôtre : seuls le bénévole qui l'a prise ou cartographiée, "
                                "un validateur ou un organisateur envoient des fichiers pour elle."},
    "err.lock_expired": {"en": "Your lock on task {id} expired at {time}; take the task again to go on.",
                         "fr": "Votre réservation de la tâche {id} a expiré à {time} ; reprenez la tâche pour continuer."},
    "page.i_am": {"en": "I am {name}", "fr": "Je suis {name}"},
    "page.i_am_new": {"en": "I am someone else", "fr": "Je suis quelqu'un d'autre"},
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
    "err.file_empty": {"en": "{file}: the file is empty; save your work again in JOSM (File › Save As, a .osm file).",
                       "fr": "{file} : le fichier est vide ; enregistrez à nouveau votre travail dans JOSM "
                             "(Fichier › Enregistrer sous, un fichier .osm)."},
    "err.file_not_osm": {"en": "{file}: this is not an OpenStreetMap file; save your work in JOSM "
                               "(File › Save As, a .osm file).",
                         "fr": "{file} : ce n'est pas un fichier OpenStreetMap ; enregistrez votre travail dans "
                               "JOSM (Fichier › Enregistrer sous, un fichier .osm)."},
    "err.file_unreadable": {"en": "{file}: this file cannot be read; save your work again in JOSM "
                                  "(File › Save As, a .osm file).",
                            "fr": "{file} : ce fichier est illisible ; enregistrez à nouveau votre travail dans "
                                  "JOSM (Fichier › Enregistrer sous, un fichier .osm)."},
    "err.file_bomb": {"en": "{file}: refused: it holds far more data than a mapathon task ever has; hand in the .osm "
                            "file saved from JOSM for your task.",
                      "fr": "{file} : refusé : il contient bien plus de données qu'une tâche de mapathon ; envoyez le "
                            "fichier .osm enregistré dans JOSM pour votre tâche."},
    "err.file_doctype": {"en": "{file}: refused: it has a declaration (DOCTYPE) that JOSM never writes; save your work "
                               "again in JOSM (File › Save As, a .osm file).",
                         "fr": "{file} : refusé : il contient une déclaration (DOCTYPE) que JOSM n'écrit jamais ; "
                               "enregistrez à nouveau votre travail dans JOSM (Fichier › Enregistrer sous, "
                               "un fichier .osm)."},
    "err.file_helper_layer": {"en": "{file}: this is a JOSM helper layer (such as the task grid), not your mapping; "
                                    "hand in the layer you mapped in (File › Save As, a .osm file).",
                              "fr": "{file} : c'est une couche d'aide de JOSM (comme la grille des tâches), pas votre "
                                    "travail ; envoyez la couche où vous avez cartographié (Fichier › Enregistrer "
                                    "sous, un fichier .osm)."},
    "err.file_bad_value": {"en": "{file}: an object has an impossible value (a number or coordinates out of range); "
                                 "save your work again in JOSM (File › Save As, a .osm file).",
                           "fr": "{file} : un objet a une valeur impossible (un numéro ou des coordonnées hors "
                                 "limites) ; enregistrez à nouveau votre travail dans JOSM (Fichier › Enregistrer "
                                 "sous, un fichier .osm)."},
    "err.file_bad_line": {"en": "{file}: line {line}: {what} is not valid; save your work again in JOSM "
                                "(File › Save As, a .osm file).",
                          "fr": "{file} : ligne {line} : {what} n'est pas valable ; enregistrez à nouveau votre "
                                "travail dans JOSM (Fichier › Enregistrer sous, un fichier .osm)."},
    "err.file_twice": {"en": "{file}: {what} appears twice; save your work again in JOSM (File › Save As, a .osm file).",
                       "fr": "{file} : {what} figure deux fois ; enregistrez à nouveau votre travail dans JOSM "
                             "(Fichier › Enregistrer sous, un fichier .osm)."},
    "err.invalid": {"en": "This request is not valid ({field}).", "fr": "Cette demande n'est pas valable ({field})."},
    "err.refused": {"en": "Refused: {detail}", "fr": "Refusé : {detail}"},
    "err.too_large": {"en": "Request too large (at most {what} here).", "fr": "Envoi trop gros (au plus {what} ici)."},
    "err.too_deep": {"en": "This request nests more than {most} levels deep: it is not one of this server's.",
                     "fr": "Cette demande a plus de {most} niveaux imbriqués : elle ne vient pas de ce serveur."},
    "err.session_expired": {"en": "Your sign-in expired after {hours} hours without use; type your name again.",
                            "fr": "Votre connexion a expiré après {hours} heures sans usage ; redonnez votre nom."},
    "err.too_many_sign_ins": {"en": "More than {n} new names from this computer in a minute; wait a minute, "
                                    "then try again.",
                              "fr": "Plus de {n} nouveaux noms depuis cet ordinateur en une minute ; attendez une "
                                    "minute, puis réessayez."},
    # -- the HTML report (report --html, merge --report) ---------------------------------------------------
    "report.title": {"en": "{project}: mapathon report", "fr": "{project} : bilan du mapathon"},
    "report.title_plain": {"en": "Mapathon report", "fr": "Bilan du mapathon"},
    "report.made": {"en": "made {when} by mapathon {version}", "fr": "fait le {when} par mapathon {version}"},
    "report.files_merged": {"en": "{n} file(s) merged", "fr": "{n} fichier(s) fusionné(s)"},
    "report.onto": {"en": "onto {base}", "fr": "sur {base}"},
    "report.checked": {"en": "checked {file}", "fr": "{file} vérifié"},
    "report.buildings_added": {"en": "buildings added", "fr": "bâtiments ajoutés"},
    "report.km_roads": {"en": "km of roads and tracks", "fr": "km de routes et de pistes"},
    "report.water_points": {"en": "water points", "fr": "points d'eau"},
    "report.other_pois": {"en": "other points of interest", "fr": "autres lieux utiles"},
    "report.modified_deleted": {"en": "objects modified / deleted", "fr": "objets modifiés / supprimés"},
    "report.volunteers_card": {"en": "volunteers", "fr": "bénévoles"},
    "report.findings_card": {"en": "findings on this work", "fr": "problèmes trouvés dans ce travail"},
    "report.conflicts_card": {"en": "conflicts settled", "fr": "conflits réglés"},
    "report.volunteers": {"en": "Volunteers", "fr": "Bénévoles"},
    "report.villages": {"en": "Villages", "fr": "Villages"},
    "report.tasks": {"en": "Tasks", "fr": "Tâches"},
    "report.col_volunteer": {"en": "volunteer", "fr": "bénévole"},
    "report.col_village": {"en": "village", "fr": "village"},
    "report.col_task": {"en": "task", "fr": "tâche"},
    "report.col_tasks": {"en": "tasks", "fr": "tâches"},
    "report.col_state": {"en": "state", "fr": "état"},
    "report.col_volunteers": {"en": "volunteers", "fr": "bénévoles"},
    "report.col_buildings": {"en": "buildings", "fr": "bâtiments"},
    "report.col_roads": {"en": "roads km", "fr": "routes km"},
    "report.col_tracks": {"en": "tracks & paths km", "fr": "pistes et sentiers km"},
    "report.col_water": {"en": "water points", "fr": "points d'eau"},
    "report.col_pois": {"en": "other points of interest", "fr": "autres lieux utiles"},
    "report.col_modified": {"en": "modified", "fr": "modifiés"},
    "report.col_deleted": {"en": "deleted", "fr": "supprimés"},
    "report.col_findings": {"en": "findings", "fr": "problèmes"},
    "report.col_address": {"en": "address", "fr": "adresse"},
    "report.col_features": {"en": "features", "fr": "objets"},
    "report.col_mapped_by": {"en": "mapped by", "fr": "cartographiée par"},
    "report.col_finding": {"en": "finding", "fr": "problème"},
    "report.col_severity": {"en": "severity", "fr": "gravité"},
    "report.col_on_work": {"en": "on the volunteers' work", "fr": "dans le travail des bénévoles"},
    "report.col_whole_file": {"en": "in the whole file", "fr": "dans tout le fichier"},
    "report.col_objects": {"en": "objects", "fr": "objets"},
    "report.col_details": {"en": "details", "fr": "détails"},
    "report.col_where": {"en": "where", "fr": "où"},
    "report.col_kind": {"en": "kind", "fr": "type"},
    "report.col_object": {"en": "object", "fr": "objet"},
    "report.col_what": {"en": "what happened", "fr": "ce qui s'est passé"},
    "report.col_file": {"en": "file", "fr": "fichier"},
    "report.col_new": {"en": "new", "fr": "nouveaux"},
    "report.all": {"en": "All", "fr": "Total"},
    "report.more": {"en": "{n} more", "fr": "{n} autres"},
    "report.measures": {"en": "Water points: a well with a pump, or tagged as a borehole, counts as a borehole. "
                               "Tracks & paths: highway=track, path, footway, cycleway, bridleway, steps; roads: "
                               "every other highway. Lengths are measured in the local UTM zone.",
                        "fr": "Points d'eau : un puits avec une pompe, ou noté comme forage, compte comme un forage. "
                              "Pistes et sentiers : highway=track, path, footway, cycleway, bridleway, steps ; "
                              "routes : toutes les autres voies (highway). Les longueurs sont mesurées dans la "
                              "zone UTM locale."},
    "report.to_look_at": {"en": "Tasks to look at", "fr": "Tâches à regarder"},
    "report.ready_with_data": {"en": "Received data but still READY", "fr": "Données reçues mais encore à cartographier"},
    "report.ready_with_data_help": {
        "en": "Someone mapped here without marking the task done (or data spilled over from a neighbouring task). "
              "Mark it done, or check that the work is complete.",
        "fr": "Quelqu'un a cartographié ici sans marquer la tâche comme terminée (ou des données débordent d'une "
              "tâche voisine). Marquez-la comme terminée, ou vérifiez que le travail est complet."},
    "report.mapped_no_data": {"en": "Marked mapped but no data received",
                              "fr": "Marquée cartographiée mais aucune donnée reçue"},
    "report.mapped_no_data_help": {
        "en": "Ask the volunteer for their file, or reset the task if nothing was mapped.",
        "fr": "Demandez son fichier au bénévole, ou remettez la tâche à cartographier si rien n'a été fait."},
    "report.none": {"en": "None.", "fr": "Aucune."},
    "report.checks": {"en": "Quality checks", "fr": "Contrôles de qualité"},
    "report.checks_help": {
        "en": "What each finding means and how to fix it in JOSM: docs/checking.md. The findings layer (GeoJSON) "
              "opens in JOSM and QGIS. Existing objects (positive ids) can be fetched with JOSM's Download object; "
              "new objects (negative ids) are renumbered by JOSM when it opens a file: find them by their position.",
        "fr": "Ce que veut dire chaque problème et comment le corriger dans JOSM : docs/checking.md. La couche des "
              "problèmes (GeoJSON) s'ouvre dans JOSM et QGIS. Les objets existants (numéros positifs) se chargent "
              "avec « Télécharger un objet » de JOSM ; les nouveaux objets (numéros négatifs) sont renumérotés par "
              "JOSM à l'ouverture d'un fichier : retrouvez-les par leur position."},
    "report.across_tasks": {"en": "across a task border", "fr": "à cheval sur deux tâches"},
    "report.between_volunteers": {"en": "between volunteers", "fr": "entre bénévoles"},
    "report.and_more": {"en": "... and {n} more (see the JSON or GeoJSON output).",
                        "fr": "... et {n} de plus (voir la sortie JSON ou GeoJSON)."},
    "report.note": {"en": "Note: {text}", "fr": "Remarque : {text}"},
    "report.where": {"en": "Where", "fr": "Où"},
    "report.where_help": {"en": "Task squares coloured by state ({key}); dots: new or changed features (blue: water "
                                 "points); rings: findings (red errors, orange warnings).",
                          "fr": "Carrés des tâches coloriés selon leur état ({key}) ; points : objets nouveaux ou "
                                "modifiés (bleu : points d'eau) ; cercles : problèmes (rouge : erreurs, orange : "
                                "avertissements)."},
    "report.map_caption": {"en": "{village}: {n} new or changed features, {f} findings",
                           "fr": "{village} : {n} objets nouveaux ou modifiés, {f} problèmes"},
    "report.conflicts": {"en": "Conflicts settled by the merge", "fr": "Conflits réglés par la fusion"},
    "report.files": {"en": "Files merged", "fr": "Fichiers fusionnés"},
    "report.skipped": {"en": "Skipped {file}: {reason}", "fr": "Laissé de côté : {file} ({reason})"},
    "report.footer": {"en": "Map data © {link}, available under the Open Database Licence (ODbL 1.0).",
                      "fr": "Données cartographiques © {link}, disponibles sous la licence Open Database License "
                            "(ODbL 1.0)."},
    "report.osm_contributors": {"en": "OpenStreetMap contributors", "fr": "les contributeurs d'OpenStreetMap"},
    "severity.error": {"en": "error", "fr": "erreur"},
    "severity.warning": {"en": "warning", "fr": "avertissement"},
    "kind.duplicate_building": {"en": "Duplicate building", "fr": "Bâtiment en double"},
    "kind.overlapping_buildings": {"en": "Overlapping buildings", "fr": "Bâtiments qui se chevauchent"},
    "kind.building_crosses_highway": {"en": "Building crosses highway", "fr": "Bâtiment qui coupe une route"},
    "kind.unclosed_building": {"en": "Unclosed building way", "fr": "Contour de bâtiment non fermé"},
    "kind.self_intersecting_area": {"en": "Self-intersecting area", "fr": "Surface qui se recoupe"},
    "kind.untagged_way": {"en": "Untagged way", "fr": "Ligne sans attributs"},
    "kind.building_not_square": {"en": "Building not square", "fr": "Bâtiment pas d'équerre"},
    "kind.tiny_building": {"en": "Tiny building", "fr": "Bâtiment minuscule"},
    "poi.school": {"en": "school", "fr": "école"},
    "poi.kindergarten": {"en": "kindergarten", "fr": "jardin d'enfants"},
    "poi.clinic": {"en": "clinic", "fr": "dispensaire"},
    "poi.hospital": {"en": "hospital", "fr": "hôpital"},
    "poi.doctors": {"en": "doctors", "fr": "cabinet médical"},
    "poi.pharmacy": {"en": "pharmacy", "fr": "pharmacie"},
    "poi.marketplace": {"en": "marketplace", "fr": "marché"},
    "poi.place of worship": {"en": "place of worship", "fr": "lieu de culte"},
    "poi.townhall": {"en": "townhall", "fr": "mairie"},
    "poi.police": {"en": "police", "fr": "police"},
    "poi.fuel": {"en": "fuel", "fr": "station-service"},
    "poi.grave yard": {"en": "grave yard", "fr": "cimetière"},
    "poi.shelter": {"en": "shelter", "fr": "abri"},
    "water.borehole": {"en": "borehole", "fr": "forage"},
    "water.well": {"en": "well", "fr": "puits"},
    "water.tap": {"en": "tap", "fr": "borne-fontaine"},
    "water.water point": {"en": "water point", "fr": "point d'eau"},
    "water.drinking water": {"en": "drinking water", "fr": "eau potable"},
    "water.spring": {"en": "spring", "fr": "source"},
    "water.water tower": {"en": "water tower", "fr": "château d'eau"},
    "water.water tank": {"en": "water tank", "fr": "réservoir d'eau"},
    # -- the water-point report (report water) -------------------------------------------------------------
    "wr.title": {"en": "{name}: water points", "fr": "{name} : points d'eau"},
    "wr.sub": {"en": "From {data}. Houses further than {distance} m from a working water point are counted.",
               "fr": "D'après {data}. On compte les maisons à plus de {distance} m d'un point d'eau qui marche."},
    "wr.summary": {"en": "Per village", "fr": "Par village"},
    "wr.village": {"en": "Village", "fr": "Village"},
    "wr.points": {"en": "Water points", "fr": "Points d'eau"},
    "wr.working": {"en": "Working", "fr": "En état de marche"},
    "wr.not_working": {"en": "Not working", "fr": "En panne"},
    "wr.unknown": {"en": "State unknown", "fr": "État inconnu"},
    "wr.seasonal": {"en": "Seasonal", "fr": "Saisonniers"},
    "wr.houses": {"en": "Houses", "fr": "Maisons"},
    "wr.far": {"en": "Houses far from water", "fr": "Maisons loin de l'eau"},
    "wr.far_house": {"en": "house more than {distance} m from a working point",
                     "fr": "maison à plus de {distance} m d'un point d'eau qui marche"},
    "wr.far_line": {"en": "{n} of {houses} houses are more than {distance} m from a working water point.",
                    "fr": "{n} maisons sur {houses} sont à plus de {distance} m d'un point d'eau qui marche."},
    "wr.broken_list": {"en": "Not working", "fr": "En panne"},
    "wr.none": {"en": "No water point mapped.", "fr": "Aucun point d'eau cartographié."},
    "wr.total": {"en": "Total", "fr": "Total"},
    "wr.outside": {"en": "Outside the villages", "fr": "Hors des villages"},
    # -- marks drawn on paper atlas pages (mapathon.scan.review, the report's field team section) -----------
    "marks.kind.point": {"en": "point", "fr": "point"},
    "marks.kind.line": {"en": "line", "fr": "ligne"},
    "marks.kind.polygon": {"en": "area", "fr": "surface"},
    "marks.colour.red": {"en": "red", "fr": "rouge"},
    "marks.colour.blue": {"en": "blue", "fr": "bleu"},
    "marks.colour.green": {"en": "green", "fr": "vert"},
    "marks.colour.black": {"en": "black", "fr": "noir"},
    "marks.fixme": {"en": "mark from paper: {colour} {kind}, page {page} {square} — read the note on the photo",
                    "fr": "marque sur papier : {kind} {colour}, page {page} {square} — lire la note sur la photo"},
    "marks.title": {"en": "Marks drawn on the paper pages", "fr": "Marques dessinées sur les pages papier"},
    "marks.help": {"en": "Each mark found on the photos, with the photo around it: read what is written next to "
                         "it, then map it in JOSM from the marks layer (it is never uploaded).",
                   "fr": "Chaque marque trouvée sur les photos, avec la photo autour : lisez ce qui est écrit à "
                         "côté, puis cartographiez-la dans JOSM depuis la couche des marques (elle n'est jamais "
                         "envoyée)."},
    "marks.none": {"en": "No mark found.", "fr": "Aucune marque trouvée."},
    "marks.page": {"en": "page {page}", "fr": "page {page}"},
    "marks.square": {"en": "square {square}", "fr": "carré {square}"},
    "marks.brought_by": {"en": "brought by {name}", "fr": "apportée par {name}"},
    "marks.field_team": {"en": "Field team", "fr": "Équipe de terrain"},
    "marks.col_pages": {"en": "pages", "fr": "pages"},
    "marks.col_marks": {"en": "marks", "fr": "marques"},
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


def set_project_lang(project, lang: str, *, actor: str = "organizer") -> str:
    """Make *lang* the project's language (kept in its ``meta`` table, the change in its event log)."""
    lang = check_lang(lang, "language")
    with project.transaction():
        project.set_meta("lang", lang)
        project.record(actor=actor, action="project.lang", data={"lang": lang})
    return lang


class Words:
    """``w = Words('fr'); w('map.squares', n=12)``: a catalog entry in one language, fields filled."""

    table: dict[str, dict[str, str]] = WORDS  # the catalog (the atlas has one of its own: atlas/i18n.py)

    def __init__(self, lang: str | None = None):
        self.lang = check_lang(lang) or DEFAULT

    def __call__(self, _key: str, **kw) -> str:
        entry = self.table[_key]
        text = entry.get(self.lang) or entry[DEFAULT]
        return text.format(**kw) if kw else text

    def get(self, _key: str, default: str, **kw) -> str:
        """An entry that may be missing (a word made elsewhere, e.g. a new kind of finding): *default* then."""
        return self(_key, **kw) if _key in self.table else default

    def number(self, value: float, decimals: int = 0) -> str:
        """1234.5 as '1,234.5' in English, '1 234,5' in French (a narrow no-break space between thousands)."""
        text = f"{value:,.{decimals}f}"
        return text.replace(",", "\u202f").replace(".", ",") if self.lang == "fr" else text

    def state(self, state: str) -> str:
        return self.get(f"state.{state}", state)


def catalog(lang: str | None) -> dict[str, str]:
    """Every word in *lang*, as the room server sends it to its pages."""
    w = Words(lang)
    return {k: w(k) for k in WORDS}


# -- the server's refusals in plain words -------------------------------------------------------------------

# Library messages (written for the command line) recognised by their wording; each becomes a plain
# sentence. The patterns follow the messages of tasks.lifecycle, tasks.volunteers, project.village and
# osm.readers (the files a volunteer hands in, bombs and impossible values included); a message none of them knows is still cleaned of flags and commands (see plain_error).
_TASK = r"task (?P<id>\d+) \((?P<key>[^)]*)\) is (?P<state>[A-Z_]+): "
_RULES: list[tuple[re.Pattern, str]] = [(re.compile(p, re.S), k) for p, k in [
    (r"--as: a volunteer name is needed", "err.name_needed"),
    (r"volunteer name .*: at most 80 printable characters", "err.name_long"),
    (r"name ['\"](?P<name>.+?)['\"] looks like the volunteer ['\"](?P<other>.+?)['\"] \(it has", "err.name_lookalike"),
    (r"name ['\"](?P<name>.+?)['\"] looks like the volunteer ['\"](?P<other>.+?)['\"] on screen", "err.name_lookalike_plain"),
    (r"name ['\"](?P<name>.+?)['\"] mixes Latin letters", "err.name_mixed"),
    (r"(--village .*?|village '.*?'): this project has no named villages", "err.no_villages"),
    (r"(--village (?P<village>.+?)|village '(?P<quoted>.+?)'): no such village", "err.no_village"),
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
    (r"task (?P<id>\d+) \([^)]*\) is [A-Z_]+, (held|mapped) by .*: .* may not hand in files", "err.not_your_task"),
    (r"task (?P<id>\d+) \([^)]*\): .*'s lock on it expired at (?P<time>.+?), so", "err.lock_expired"),
    (_TASK, "err.task_state"),
    (r"task (?P<id>\S+): the project has no tasks yet", "err.no_tasks_yet"),
    (r"task (?P<id>\S+): no such task", "err.no_task"),
    (r"--as (?P<name>.+?): no such volunteer", "err.no_volunteer"),
    (r"(?P<file>[^:]+): unsupported file type", "err.file_type"),
    (r"(?P<file>[^:]+): (empty file|no OSM data in the file)", "err.file_empty"),
    (r"(?P<file>[^:]+): (this is .+?, not an OpenStreetMap file|not OpenStreetMap XML)", "err.file_not_osm"),
    (r"(?P<file>[^:]+): refused: (it expands to more than|more than [\d,]+ objects in)", "err.file_bomb"),
    (r"(?P<file>[^:]+): refused: the file has a DOCTYPE", "err.file_doctype"),
    (r"(?P<file>[^:]+): JOSM marks this layer upload=", "err.file_helper_layer"),
    (r"(?P<file>[^:]+): (object id \S+ is out of range|node \S+ has no valid coordinates)", "err.file_bad_value"),
    (r"(?P<file>[^:]+): line (?P<line>\d+): (?P<what>[^:]+): ", "err.file_bad_line"),
    (r"(?P<file>[^:]+): (?P<what>(node|way|relation) -?\d+) appears twice", "err.file_twice"),
    (r"(?P<file>[^:]+): (damaged|not well-formed|not an OSM|not gzip|not bzip|this is an? (XML|PBF|gzip|bzip2)"
     r"|this is an (osmChange|OSM \(\.osm\)) file)",
     "err.file_unreadable"),
]]
_DID_YOU_MEAN = re.compile(r"did you mean '?(?P<close>.+?)'?\?")
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
        if "quoted" in fields:  # mapathon.selection's wording: village 'NAME': ...
            fields["village"] = fields["village"] or fields.pop("quoted")
            fields.pop("quoted", None)
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
