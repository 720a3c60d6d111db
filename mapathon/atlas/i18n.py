"""Every word printed on an atlas, in French and English."""

from __future__ import annotations

from ..i18n import Words as _Words

WORDS: dict[str, dict[str, str]] = {
    # legend: areas
    "building": {"fr": "Bâtiment", "en": "Building"},
    "residential": {"fr": "Zone habitée", "en": "Residential area"},
    "farmland": {"fr": "Champs, vergers", "en": "Fields, orchards"},
    "forest": {"fr": "Forêt, bois", "en": "Forest, woods"},
    "grass": {"fr": "Prairie, herbe", "en": "Meadow, grass"},
    "scrub": {"fr": "Brousse", "en": "Scrub, bush"},
    "cemetery": {"fr": "Cimetière", "en": "Cemetery"},
    "industrial": {"fr": "Industrie, commerces", "en": "Industry, shops"},
    "bare": {"fr": "Sable, roche nue", "en": "Sand, bare rock"},
    "wetland": {"fr": "Zone humide, marécage", "en": "Wetland, marsh"},
    "water": {"fr": "Eau (mare, lac)", "en": "Water (pond, lake)"},
    # legend: lines
    "major": {"fr": "Route nationale", "en": "Trunk road"},
    "primary": {"fr": "Route principale", "en": "Primary road"},
    "secondary": {"fr": "Route secondaire", "en": "Secondary road"},
    "tertiary": {"fr": "Route tertiaire", "en": "Tertiary road"},
    "minor": {"fr": "Rue, route locale", "en": "Street, local road"},
    "track": {"fr": "Piste", "en": "Track"},
    "path": {"fr": "Sentier", "en": "Path"},
    "rail": {"fr": "Voie ferrée", "en": "Railway"},
    "river": {"fr": "Fleuve, rivière", "en": "River"},
    "stream": {"fr": "Ruisseau", "en": "Stream"},
    "seasonal": {"fr": "Cours d'eau saisonnier", "en": "Seasonal stream"},
    "ditch": {"fr": "Fossé, canal", "en": "Ditch, drain"},
    # legend: points
    "well": {"fr": "Puits", "en": "Well"},
    "well_pump": {"fr": "Puits à pompe", "en": "Well with a pump"},
    "borehole": {"fr": "Forage", "en": "Borehole"},
    "drinking_water": {"fr": "Point d'eau potable", "en": "Drinking water"},
    "tap": {"fr": "Borne-fontaine", "en": "Water tap"},
    "spring": {"fr": "Source", "en": "Spring"},
    "state_working": {"fr": "Point d'eau en état de marche", "en": "Water point working"},
    "state_broken": {"fr": "Point d'eau en panne", "en": "Water point not working"},
    "state_unknown": {"fr": "État du point d'eau inconnu", "en": "Water point, state unknown"},
    "school": {"fr": "École", "en": "School"},
    "health": {"fr": "Centre de santé", "en": "Health centre"},
    "market": {"fr": "Marché", "en": "Market"},
    "mosque": {"fr": "Mosquée", "en": "Mosque"},
    "church": {"fr": "Église", "en": "Church"},
    "worship": {"fr": "Lieu de culte", "en": "Place of worship"},
    "townhall": {"fr": "Mairie", "en": "Town hall"},
    "task": {"fr": "Tâche de cartographie", "en": "Mapping task"},
    "utm_inner": {"fr": "Ligne UTM (pas un bord de carreau)", "en": "UTM line (not a square's edge)"},
    # places
    "city": {"fr": "ville", "en": "city"},
    "town": {"fr": "ville", "en": "town"},
    "village": {"fr": "village", "en": "village"},
    "hamlet": {"fr": "hameau", "en": "hamlet"},
    "suburb": {"fr": "quartier", "en": "suburb"},
    "quarter": {"fr": "quartier", "en": "quarter"},
    "neighbourhood": {"fr": "quartier", "en": "neighbourhood"},
    "isolated_dwelling": {"fr": "habitation isolée", "en": "isolated dwelling"},
    "locality": {"fr": "lieu-dit", "en": "locality"},
    "farm": {"fr": "ferme", "en": "farm"},
    # task states
    "READY": {"fr": "à faire", "en": "to map"},
    "LOCKED_FOR_MAPPING": {"fr": "en cours", "en": "being mapped"},
    "MAPPED": {"fr": "cartographiée", "en": "mapped"},
    "LOCKED_FOR_VALIDATION": {"fr": "en validation", "en": "being validated"},
    "VALIDATED": {"fr": "validée", "en": "validated"},
    "INVALIDATED": {"fr": "à reprendre", "en": "to redo"},
    "BADIMAGERY": {"fr": "image inutilisable", "en": "bad imagery"},
    # page furniture
    "page": {"fr": "page", "en": "page"},
    "p": {"fr": "p.", "en": "p."},
    "scale": {"fr": "Échelle", "en": "Scale"},
    "one_cm": {"fr": "1 cm sur la carte = {m} m sur le terrain", "en": "1 cm on the map = {m} m on the ground"},
    "legend": {"fr": "Légende", "en": "Key"},
    "north": {"fr": "N", "en": "N"},
    "utm_grid": {"fr": "Quadrillage UTM {zone} (WGS 84) tous les {step} m, en km",
                 "en": "UTM grid {zone} (WGS 84) every {step} m, in km"},
    "ticks": {"fr": "Graduations en latitude et longitude (WGS 84)", "en": "Ticks in latitude and longitude (WGS 84)"},
    "squares": {"fr": "Carreaux de repérage de {mm} mm : colonnes {cols}, lignes {rows}",
                "en": "Reference squares of {mm} mm: columns {cols}, rows {rows}"},
    "data_date": {"fr": "Données du {date}", "en": "Data of {date}"},
    "file_date": {"fr": "Fichier de données du {date}", "en": "Data file of {date}"},
    "print_date": {"fr": "imprimé le {date}", "en": "printed {date}"},
    "attribution": {"fr": "© les contributeurs d'OpenStreetMap (ODbL)", "en": "© OpenStreetMap contributors (ODbL)"},
    "qr_note": {"fr": "Code QR : position de cette page", "en": "QR code: where this page is"},
    "overview": {"fr": "Carte d'ensemble", "en": "Overview map"},
    "atlas": {"fr": "Atlas de terrain", "en": "Field atlas"},
    "contents": {"fr": "Sommaire", "en": "Contents"},
    "index": {"fr": "Index des lieux", "en": "Index of places"},
    "index_cont": {"fr": "Index des lieux (suite)", "en": "Index of places (continued)"},
    "index_help": {"fr": "Chaque nom renvoie à la page et au carreau (colonne, ligne) où il se trouve.",
                   "en": "Each name points to the page and to the square (column, row) where it is."},
    "see": {"fr": "voir", "en": "see"},
    "places_section": {"fr": "Villages et lieux-dits", "en": "Villages and places"},
    "water_section": {"fr": "Points d'eau", "en": "Water points"},
    "services_section": {"fr": "Écoles, santé, marchés, culte", "en": "Schools, health, markets, worship"},
    "notes": {"fr": "Notes de terrain", "en": "Field notes"},
    "notes_for": {"fr": "Notes de terrain — page {n}", "en": "Field notes — page {n}"},
    "notes_fields": {"fr": "Date : ............  Équipe : ..............................  Carreau : ......",
                     "en": "Date: ............  Team: ..............................  Square: ......"},
    "pages_of": {"fr": "pages {a} à {b}", "en": "pages {a} to {b}"},
    "page_n": {"fr": "page {n}", "en": "page {n}"},
    "map_pages": {"fr": "{n} pages de carte au {scale}", "en": "{n} map pages at {scale}"},
    "area": {"fr": "Zone", "en": "Area"},
    "tasks_area": {"fr": "Tâches {ids}", "en": "Tasks {ids}"},
    "key_map": {"fr": "Les cadres rouges numérotés sont les pages de l'atlas.",
                "en": "The numbered red frames are the pages of the atlas."},
    "tasks_legend": {"fr": "Tâches : numéro et état", "en": "Tasks: number and state"},
    "imagery_note": {"fr": "Fond : imagerie satellite en cache", "en": "Background: cached satellite imagery"},
    "no_data": {"fr": "Aucune donnée cartographiée ici", "en": "Nothing mapped here yet"},
}

MONTHS = {
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"],
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
}


class Words(_Words):
    """The atlas's words (:data:`WORDS`), with the machinery of :class:`mapathon.i18n.Words`."""

    table = WORDS

    def date(self, iso: str) -> str:
        """'2022-07-24...' as '24 juillet 2022' / '24 July 2022'."""
        y, m, d = int(iso[0:4]), int(iso[5:7]), int(iso[8:10])
        return f"{d} {MONTHS[self.lang][m - 1]} {y}"
