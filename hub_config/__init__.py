"""JupyterHub configuration of the facility, loaded through ``jupyterhub_config.d``.

One package drives both the Kubernetes deployment and the single-machine facility; the hub
capability (authenticator, spawner profiles, Dask cluster factory) is built here.
"""
