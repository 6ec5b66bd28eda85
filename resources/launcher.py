"""Where processing tasks run, as a Dagster resource: a Nomad cluster, or local subprocesses.

With a Nomad address (`nomad_address`, else NOMAD_ADDR) tasks are Nomad batch jobs
(`NomadLauncher`; token, namespace and region from the fields, else NOMAD_TOKEN,
NOMAD_NAMESPACE, NOMAD_REGION). Without one, the embedded default runs each task as a local
subprocess (`LocalSubprocessLauncher`, state under `<state dir>/launcher`), so the chain runs on
a laptop. Everything is read when a run opens the launcher, never at import.

The local launcher cannot run a routine's docker image: by default it runs a stand-in (`python
-c`) that writes a small JSON product at the task's output path, which is what the demo chain
needs; `local_command` replaces it with any argv.
"""

# No `from __future__ import annotations` here: Dagster reads these annotations (resource fields).
import sys
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from resources.nomad import (
    HOSTNAME_ATTRIBUTE,
    JobState,
    LaunchSettings,
    LocalSubprocessLauncher,
    NomadLauncher,
    TaskJobSpec,
    TaskLauncher,
)
from resources.settings import setting
from resources.warehouse import state_dir

DEFAULT_NOMAD_PRODUCTS_DIR = "/data/products"

# Runs in the task's environment (launch.py sets FISHNET_*): writes the product atomically.
LOCAL_STAND_IN = r"""
import json, os, pathlib, time
out = pathlib.Path(os.environ["FISHNET_OUTPUT_PATH"])
out.parent.mkdir(parents=True, exist_ok=True)
record = {k[len("FISHNET_"):].lower(): v for k, v in os.environ.items() if k.startswith("FISHNET_")}
record["written_at"] = time.time()
tmp = out.with_name(out.name + ".tmp")
tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
os.replace(tmp, out)
"""


class LocalStandInLauncher:
    """The local launcher running one argv for every task (the routine's image cannot run here)."""

    def __init__(self, local: LocalSubprocessLauncher, argv: list[str]) -> None:
        self.local = local
        self.argv = argv

    def register_batch_job(self, spec: TaskJobSpec) -> str:
        """Start the stand-in with the task's environment."""
        local_spec = spec.model_copy(update={"command": self.argv[0], "args": self.argv[1:]})
        return self.local.register_batch_job(local_spec)

    def job_state(self, job_id: str) -> JobState:
        """The local job's state."""
        return self.local.job_state(job_id)

    def stop_job(self, job_id: str) -> None:
        """Stop the local job."""
        self.local.stop_job(job_id)


class LauncherResource(ConfigurableResource):
    """Nomad when an address is configured (or NOMAD_ADDR is set), else local subprocesses."""

    nomad_address: str | None = Field(
        default=None, description="Nomad HTTP address; empty means NOMAD_ADDR, else local."
    )
    nomad_token: str | None = Field(default=None, description="ACL token; empty: NOMAD_TOKEN.")
    nomad_namespace: str | None = Field(
        default=None, description="Namespace; empty: NOMAD_NAMESPACE (else Nomad's default)."
    )
    nomad_region: str | None = Field(
        default=None, description="Region; empty: NOMAD_REGION (else the agent's)."
    )
    datacenters: list[str] = Field(
        default_factory=lambda: ["*"], description="Datacenters a job may run in."
    )
    vm_attribute: str = Field(
        default=HOSTNAME_ATTRIBUTE,
        description="Node attribute the planned VM name is matched against.",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Nomad HTTP timeout.")
    mhz_per_core: int = Field(default=1000, gt=0, description="CPU MHz reserved per core.")
    products_dir: str | None = Field(
        default=None,
        description="Where tasks write products; empty: FISHNET_PRODUCTS_DIR, else "
        "/data/products on Nomad and <state dir>/launcher/products locally.",
    )
    local_state_dir: str | None = Field(
        default=None, description="Local launcher state; empty: <state dir>/launcher."
    )
    local_command: list[str] | None = Field(
        default=None,
        description="argv the local launcher runs for every task; empty: the built-in stand-in "
        "that writes a JSON product at FISHNET_OUTPUT_PATH.",
    )
    lock_wait_s: float = Field(
        default=60.0,
        ge=0,
        description="How long a launcher waits for ready tasks another transaction holds.",
    )

    def resolved_address(self) -> str | None:
        """The Nomad address in use, or None for the local launcher."""
        return setting("NOMAD_ADDR", self.nomad_address)

    @property
    def kind(self) -> str:
        """`nomad` or `local`, for run metadata."""
        return "nomad" if self.resolved_address() else "local"

    def local_dir(self) -> Path:
        """The local launcher's state directory."""
        return Path(self.local_state_dir) if self.local_state_dir else state_dir() / "launcher"

    def launcher(self) -> TaskLauncher:
        """A launcher client for this run."""
        address = self.resolved_address()
        if address:
            return NomadLauncher(
                address,
                token=setting("NOMAD_TOKEN", self.nomad_token),
                namespace=setting("NOMAD_NAMESPACE", self.nomad_namespace),
                region=setting("NOMAD_REGION", self.nomad_region),
                timeout=self.timeout_s,
                datacenters=list(self.datacenters),
                vm_attribute=self.vm_attribute,
            )
        local = LocalSubprocessLauncher(self.local_dir() / "jobs")
        argv = list(self.local_command or [sys.executable, "-c", LOCAL_STAND_IN])
        return LocalStandInLauncher(local, argv)

    def settings(self) -> LaunchSettings:
        """How tasks become jobs (product paths, CPU units, lock wait)."""
        products = setting("FISHNET_PRODUCTS_DIR", self.products_dir)
        if not products:
            if self.resolved_address():
                products = DEFAULT_NOMAD_PRODUCTS_DIR
            else:
                products = str(self.local_dir() / "products")
        return LaunchSettings(
            products_dir=products, mhz_per_core=self.mhz_per_core, lock_wait_s=self.lock_wait_s
        )
