"""Data layer: the labeled-sample schema, loaders for user formats, TOFU, and the embedded synthetic tasks."""

from negtune.data.io import DataError, read_rows
from negtune.data.loaders import KNOWN_FORMATS, detect_format, load_records, normalize_rows
from negtune.data.schema import LABELED_COLUMN_NAMES, SchemaError, prompt_id, read_labeled, validate_labeled

__all__ = [
    "DataError",
    "KNOWN_FORMATS",
    "LABELED_COLUMN_NAMES",
    "SchemaError",
    "detect_format",
    "load_records",
    "normalize_rows",
    "prompt_id",
    "read_labeled",
    "read_rows",
    "validate_labeled",
]
