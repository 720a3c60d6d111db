"""Printable field atlases (``mapathon print``): Mapnik map bodies, ReportLab furniture, pikepdf assembly."""

from .atlas import AtlasResult, PrintOptions, make_atlas

__all__ = ["AtlasResult", "PrintOptions", "make_atlas"]
