"""The facility's look on the hub's pages: its name, words, logo and links.

The templates in ``hub_config/templates`` extend JupyterHub's own (``templates/<name>.html``)
and read ``facility`` (the ``branding`` settings) from the template variables, so a site
changes its name, description, logo and links through settings, not HTML.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from hub_config.settings import BrandingSettings

TEMPLATES = Path(__file__).resolve().parent / "templates"


def configure_branding(c, branding: BrandingSettings) -> None:
    """Add the facility's templates after any the site configured itself, and its logo unless
    the site set one."""
    # JupyterHub searches these before its own templates, which ours extend.
    site = list(c.JupyterHub.get("template_paths", []))
    c.JupyterHub.template_paths = [*site, str(TEMPLATES)]
    c.JupyterHub.template_vars.update({"facility": asdict(branding)})
    if "logo_file" not in c.JupyterHub:
        c.JupyterHub.logo_file = str(TEMPLATES / "logo.svg")
