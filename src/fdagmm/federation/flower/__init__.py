"""The Flower backend (``fed.backend=flower``): the same federation over Flower's Message API.

- ``partitions``: one partition file per organisation (its encoded records), and reading one back.
- ``records``: our objects as Flower records (GMM statistics, the run's config).
- ``client_app`` / ``server_app``: the ClientApp and ServerApp; they call the same ``Client``,
  ``fedavg`` and evaluation code as the in-process backend, so the backends differ only in transport.
- ``launcher``: a SuperLink and one SuperNode per client on 127.0.0.1, ``flwr run``, its checks.

Needs the optional extra: ``pip install -e ".[flower]"``. The Flower App that ``flwr run``
packages is ``src/flower_app`` (its pyproject.toml names the two apps here).
"""
