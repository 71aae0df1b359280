"""Exports of a tracked frame field (COCO, DAVIS, YouTube-VIS) and the DAVIS importer.

Every exporter takes ``(sample_collection, label_field, export_dir, ..., overwrite=False)``, writes
every frame of every video of the collection, and builds the export in a hidden sibling folder that
replaces ``export_dir`` only once complete (see ``_atomic``). Problems raise :class:`ExportError`.
"""

from samtrack_ops.export._atomic import ExportError
from samtrack_ops.export.coco import export_coco
from samtrack_ops.export.davis import export_davis, import_davis
from samtrack_ops.export.ytvis import export_ytvis

EXPORTERS = {"coco": export_coco, "davis": export_davis, "ytvis": export_ytvis}

__all__ = ["EXPORTERS", "ExportError", "export_coco", "export_davis", "export_ytvis", "import_davis"]
