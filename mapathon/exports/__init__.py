"""Exports of project data to the files other tools read (QGIS, JOSM, GPS units, spreadsheets)."""
