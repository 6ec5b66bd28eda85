"""File inboxes: folders where other systems drop files for the platform to ingest."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from resources.settings import setting_path
from resources.warehouse import state_dir


class NafInboxResource(ConfigurableResource):
    """Where NAF position files arrive: `directory`, else NAF_INBOX_DIR, else <state>/inbox/naf."""

    directory: str | None = Field(default=None, description="inbox folder of NAF text files")

    def path(self) -> Path:
        """The inbox folder (resolved when used, not when definitions load)."""
        return setting_path("NAF_INBOX_DIR", self.directory, state_dir() / "inbox" / "naf")


class LogbookInboxResource(ConfigurableResource):
    """Where logbook files arrive: `directory`, else LOGBOOK_INBOX_DIR, else <state>/inbox/logbook."""

    directory: str | None = Field(default=None, description="inbox folder of zip/XML files")

    def path(self) -> Path:
        """The inbox folder (resolved when used, not when definitions load)."""
        return setting_path("LOGBOOK_INBOX_DIR", self.directory, state_dir() / "inbox" / "logbook")
