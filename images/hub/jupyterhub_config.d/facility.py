"""The facility's hub configuration, loaded by zero-to-jupyterhub's jupyterhub_config.py.

z2jh runs the files of jupyterhub_config.d after its own configuration, with ``c`` defined;
the facility's settings are the chart's ``jupyterhub.custom.facility`` values.
"""

from z2jh import get_config

from hub_config.configure import configure
from hub_config.settings import load_settings

configure(c, load_settings(get_config("custom.facility")))  # noqa: F821 - z2jh defines c
