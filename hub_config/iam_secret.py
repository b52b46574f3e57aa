"""The IAM client secret, copied at the hub pod's start from whichever Secret holds it.

z2jh renders ``hub.extraVolumes`` as given, so the chart cannot name the site's Secret
(``iam.existingSecret``) or its own in the hub's volumes. It writes that name into a ConfigMap
of fixed name instead, and this runs as the hub pod's init container, with the hub's account
(z2jh's hub Role reads Secrets in the hub's namespace): it writes the secret into a
memory-backed volume that only the hub mounts, where ``facility.iam.clientSecretFile`` reads
it. The secret is never in the pod spec or an environment variable.

    python -m hub_config.iam_secret <ConfigMap mount> <destination directory>
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.rest import ApiException

KEY = "client-secret"
POD_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


async def copy_client_secret(api: client.CoreV1Api, namespace: str, ref: Path, dest: Path) -> str:
    """Write the client secret of the Secret that ``ref/secretName`` names into ``dest``;
    the Secret's name is returned. A missing Secret or key stops the pod with what to do."""
    name = (ref / "secretName").read_text().strip()
    try:
        secret = await api.read_namespaced_secret(name, namespace)
    except ApiException as err:
        if err.status != 404:
            raise
        raise SystemExit(
            f"Secret {namespace}/{name} not found: create it with key {KEY} holding the IAM "
            "client secret (iam.existingSecret), or set iam.clientSecret"
        ) from None
    value = (secret.data or {}).get(KEY)
    if not value:
        raise SystemExit(f"Secret {namespace}/{name} has no key {KEY}: put the client secret there")
    target = dest / KEY
    target.unlink(missing_ok=True)  # a restarted pod runs this again on the same volume
    with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400), "wb") as out:
        out.write(base64.b64decode(value))
    return name


async def main(ref: str, dest: str) -> None:
    config.load_incluster_config()
    async with client.ApiClient() as api:
        namespace = POD_NAMESPACE.read_text().strip()
        name = await copy_client_secret(client.CoreV1Api(api), namespace, Path(ref), Path(dest))
    print(f"IAM client secret from Secret {namespace}/{name}")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
