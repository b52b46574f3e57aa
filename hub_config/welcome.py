"""The README.md in each new home: where the examples, the data, the Dask sidebar and help are.

Written once, when the home is created, so a user may edit or delete it. Locally the hub writes
it before the server starts (``seed_welcome_hook``); on Kubernetes the hub cannot reach the
home volume, so the server's pod writes it itself when it starts (``python -m
hub_config.welcome``, with the text the hub gives it in ``FACILITY_WELCOME``, copying the
example notebooks too), once per home: a marker in ``~/.facility`` keeps a deleted README
deleted.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from hub_config.settings import BrandingSettings


def welcome_text(branding: BrandingSettings, sample_data: str) -> str:
    links = [
        f"- Documentation: {branding.documentation_url}" if branding.documentation_url else "",
        f"- Support: {branding.support_url}" if branding.support_url else "",
    ]
    help_lines = "\n".join(line for line in links if line) or (
        "- Ask the people who run this facility; the hub's pages link their documentation."
    )
    data = f"`{sample_data}`" if sample_data else "the directory in `$FACILITY_SAMPLE_DATA`"
    return f"""# Welcome to {branding.name}

{branding.description}

## Where things are

- **Examples**: `examples/` holds three analyses as notebooks (Ds→φπ with its fit, the stop
  search with systematic variations, DT tag-and-probe). Open one and run it cell by cell.
- **Data**: small sample datasets, one per analysis, are in {data}
  (`FACILITY_SAMPLE_DATA` in notebooks and terminals). Your own files go in this home, which
  is kept between sessions.
- **Dask**: the Dask tab in the left sidebar (the Dask logo) has a **+ NEW** button that
  starts a cluster of your server's size; its card shows the workers and a button to scale
  it. A notebook makes the same kind of cluster with `facility_cluster()` from
  `analysis_kernels.clusters`.
- **Your IAM token** is the file named by `BEARER_TOKEN_FILE`, kept fresh by the hub, for
  reading grid storage as yourself.

## Help

{help_lines}

To sign out (of the hub and of IAM, so another account can sign in): File → Log Out.
"""


def seed_welcome_hook(branding: BrandingSettings, sample_data: str):
    """A ``pre_spawn_hook`` that writes README.md into a home the spawner is about to create."""

    def hook(spawner) -> None:
        home = Path(spawner.home_dir)
        if not home.exists():
            home.mkdir(parents=True)
            (home / "README.md").write_text(welcome_text(branding, sample_data))

    return hook


WELCOMED = Path(".facility") / "welcomed"


def welcome_home(home: Path, text: str, examples: Path | None = None) -> bool:
    """Write README.md (and copy the example notebooks to ``examples/``) into ``home`` unless
    this home was welcomed before; True if it was welcomed now."""
    marker = home / WELCOMED
    if not text or marker.exists():
        return False
    readme = home / "README.md"
    if not readme.exists():
        readme.write_text(text)
    if examples is not None and not (home / "examples").exists():
        shutil.copytree(examples, home / "examples")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return True


if __name__ == "__main__":
    notebooks = Path(str(resources.files("analysis_kernels") / "notebooks"))
    welcome_home(Path.home(), os.environ.get("FACILITY_WELCOME", ""), notebooks)
