"""The spawner of the local facility: one process per user server, on this machine.

Each user's server gets its own home under the state directory, the facility's profiles (CPU
and memory become ``CPU_LIMIT`` and ``MEM_LIMIT``, which size the user's LocalCluster), the
example notebooks on first start, and the IAM token as a file. All servers run as the hub's own
OS user: the local facility separates users through the hub's authentication, not through the
operating system; tenant isolation is the Kubernetes facility's job.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from tornado import web
from traitlets import Unicode, default

from hub_config.facility_spawner import FacilitySpawnerMixin
from hub_config.profiles import choose_profile, options_form
from hub_config.tokens import TokenFile


class LocalFacilitySpawner(FacilitySpawnerMixin, SimpleLocalProcessSpawner):
    users_dir = Unicode(config=True, help="Directory holding one home per user.")
    notebooks_dir = Unicode(config=True, help="Example notebooks copied into new homes.")

    @default("home_dir")
    def _home_dir_default(self):
        return str(Path(self.users_dir) / self.owner)

    @default("cmd")
    def _cmd_default(self):
        return [sys.executable, "-m", "jupyterhub.singleuser"]

    @default("args")
    def _args_default(self):
        # Containers and CI machines often run everything as root; Jupyter refuses that unasked.
        return ["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []

    @default("default_url")
    def _default_url_default(self):
        return "/lab"

    @property
    def token_path(self) -> Path:
        return Path(self.home_dir) / ".facility" / "bearer_token"

    def token_store(self) -> TokenFile:
        return TokenFile(self.token_path)

    @default("options_form")
    def _options_form_default(self):
        return lambda spawner: options_form(spawner.user_profiles())

    @default("options_from_form")
    def _options_from_form_default(self):
        return lambda form: {"profile": (form.get("profile") or [""])[0]}

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return lambda spawner, options: spawner.apply_profile(options.get("profile"))

    def apply_profile(self, slug: str | None) -> None:
        """Take on the chosen profile's limits; a forbidden choice is refused with its reason."""
        try:
            profile = choose_profile(self.user_profiles(), slug)
        except PermissionError as err:
            raise web.HTTPError(403, str(err)) from err
        self.cpu_limit = float(profile.cpu)
        self.mem_limit = profile.memory_bytes
        self.log.info("%s starts profile %s", self.user.name, profile.slug)

    def _seed_home(self) -> None:
        home = Path(self.home_dir)
        home.mkdir(parents=True, exist_ok=True)
        examples = home / "examples"
        if self.notebooks_dir and not examples.exists():
            shutil.copytree(self.notebooks_dir, examples)

    async def start(self):
        self._seed_home()
        return await super().start()
