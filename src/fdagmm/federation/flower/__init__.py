"""The Flower backend (``fed.backend=flower``): the same federation over Flower's Message API.

- ``partitions``: one partition file per organisation (its raw records), reading one back,
  and the encoded copy each ClientApp memory-maps.
- ``records``: our objects as Flower records (GMM statistics, the run's config).
- ``server_app``: the ServerApp, one message per client per round (``FdagmmRounds``).
- ``client_app`` / ``client_round``: the ClientApp (Flower's imports only) and what it does
  with a round message. Both apps call the same ``Client``, ``Strategy`` and evaluation code
  as the in-process backend, so the backends differ only in transport.
- ``launcher``: a SuperLink and one SuperNode per client on 127.0.0.1, ``flwr run``, its checks.

Needs the optional extra: ``pip install -e ".[flower]"``. The Flower App that ``flwr run``
packages is ``src/flower_app`` (its pyproject.toml names the two apps here).
"""
