"""JupyterHub configuration of the local facility: ``jupyterhub -f hub_config/jupyterhub_config.py``.

The settings file comes from ``FACILITY_SETTINGS``; ``python -m hub_config.local`` writes one
and starts the hub with it. Everything else is in ``hub_config.configure``.
"""

import os

from hub_config.configure import configure
from hub_config.settings import FacilityConfigError, load_settings_file

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

if "FACILITY_SETTINGS" not in os.environ:
    raise FacilityConfigError("FACILITY_SETTINGS: set it to the facility settings YAML file")
configure(c, load_settings_file(os.environ["FACILITY_SETTINGS"]))
