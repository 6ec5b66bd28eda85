"""Where the file-based reference sources are: a field, else its environment variable.

The reference domain bundles a default for each (platform_assets/reference/data); this resource
only says where an operator moved a source, so it never needs to know the domain's files.
"""

from pathlib import Path
from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field

from resources.settings import setting

ReferenceFile = Literal[
    "species_csv", "fishing_gear_codes_csv", "ports_csv", "districts_csv", "fleet_segments_dir"
]

#: For each file source: the environment variable that may point at it, and the bundled name.
REFERENCE_FILES: dict[str, tuple[str, str]] = {
    "species_csv": ("REFERENCE_SPECIES_CSV", "species.csv"),
    "fishing_gear_codes_csv": ("REFERENCE_FISHING_GEAR_CODES_CSV", "fishing_gear_codes.csv"),
    "ports_csv": ("REFERENCE_PORTS_CSV", "ports.csv"),
    "districts_csv": ("REFERENCE_DISTRICTS_CSV", "districts.csv"),
    "fleet_segments_dir": ("REFERENCE_FLEET_SEGMENTS_DIR", "fleet_segments"),
}


class ReferenceFilesResource(ConfigurableResource):
    """Each field, else its environment variable (REFERENCE_SPECIES_CSV, ...), else the bundled
    file of the reference domain."""

    species_csv: str | None = Field(default=None, description="FAO ASFIS species CSV")
    fishing_gear_codes_csv: str | None = Field(default=None, description="ISSCFG gear codes CSV")
    ports_csv: str | None = Field(default=None, description="ports CSV (UN/LOCODE)")
    districts_csv: str | None = Field(default=None, description="maritime districts CSV")
    fleet_segments_dir: str | None = Field(
        default=None, description="folder of <year>.yaml fleet segment files"
    )

    def path(self, source: ReferenceFile, bundled_dir: Path) -> Path:
        """The file (or folder) of a source, resolved when used, not when definitions load."""
        env, name = REFERENCE_FILES[source]
        configured = setting(env, getattr(self, source))
        return Path(configured) if configured else bundled_dir / name
