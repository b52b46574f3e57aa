"""What the local and the Kubernetes spawner share: the profiles open to the user's IAM
groups, the environment every user server gets, and the token kept fresh as a file."""

from __future__ import annotations

from kubespawner.slugs import safe_slug
from traitlets import Any, Dict

from analysis_kernels.clusters import cluster_name
from hub_config.profiles import allowed_profiles
from hub_config.settings import Profile
from hub_config.tokens import BearerTokenMixin


class FacilitySpawnerMixin(BearerTokenMixin):
    profiles = Any((), config=True, help="The facility's profiles (hub_config.settings.Profile).")
    facility_environment = Dict(config=True, help="Environment of every user server.")

    def user_profiles(self) -> list[Profile]:
        """The profiles this spawner's user may pick."""
        return allowed_profiles(self.profiles, {g.name for g in self.user.groups})

    def get_env(self):
        env = super().get_env()
        env.update(self.facility_environment)
        env.update(self.token_environment())
        env["FACILITY_DASK_CLUSTER_NAME"] = cluster_name(self.owner)
        return env

    @property
    def owner(self) -> str:
        """The user's DNS-safe name, which names their home directory (local), account, Role
        and Dask cluster."""
        return safe_slug(self.user.name)
