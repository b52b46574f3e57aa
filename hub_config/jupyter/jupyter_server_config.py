"""Jupyter settings of every user server, found through ``JUPYTER_CONFIG_PATH``.

Beside this file: ``labconfig/page_config.json`` turns off JupyterLab's announcements (the
"official Jupyter news" question and update checks, which reach the internet), and
``custom/custom.css`` keeps the Dask sidebar's cluster cards in view.
"""

from pathlib import Path

from jupyter_core.paths import jupyter_config_dir

c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file
c.LabApp.custom_css = True
# Where /custom/custom.css is looked for (a web application setting, not a trait): the user's
# own ~/.jupyter/custom first, as Jupyter's default, then the facility's.
# A plain dict: JupyterHub's single-user extension reads it as one.
c.ServerApp.tornado_settings = c.ServerApp.get("tornado_settings", {}) | {
    "static_custom_path": [
        str(Path(jupyter_config_dir()) / "custom"),
        str(Path(__file__).resolve().parent / "custom"),
    ]
}
