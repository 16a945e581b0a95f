"""Secure aggregation over Flower (``privacy.secure_aggregation=true``): the protocol of
``federation.secure_aggregation`` with one exchange per step after the round message.

A round message's reply carries, for each sum the client joins (``update``: its strategy's
``contribution``; ``stats``: its mixture statistics), public keys and the vector's layout
instead of the vector; the vector and the client's secrets stay in its ``context.state``.
Three ``query.secagg`` exchanges follow (shares, masked input, unmask), each carrying every
sum of the round, and the server ends with the sums alone. A client that fails or does not
answer a step drops out of that sum (``SumServer`` says what the sum then needs).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from torch import Tensor

from fdagmm.federation.secure_aggregation import Layout, Participant, PublicKeys, SumServer, common_layout, flatten, unflatten

UPDATE_SUM, STATS_SUM = "update", "stats"
SHARE, MASK, UNMASK = "share", "mask", "unmask"


def keys_key(name: str) -> str:
    """The round reply's record of a client's ``join`` of sum ``name``."""
    return f"secagg-{name}"


def _state_key(name: str) -> str:
    return f"fdagmm-secagg-{name}"


def _sum_key(name: str) -> str:
    return f"sum-{name}"


def join(context: Context, name: str, client_id: int, tensors: dict[str, Tensor]) -> ConfigRecord:
    """Client: enter sum ``name`` with ``tensors``; returns its public keys and the layout."""
    vector, layout = flatten(tensors)
    participant = Participant.new(client_id, vector)
    context.state[_state_key(name)] = ConfigRecord(participant.to_record())
    share_key, mask_key = participant.public_keys
    return ConfigRecord({"share-key": share_key, "mask-key": mask_key, "layout": json.dumps(layout)})


def client_step(msg: Message, context: Context) -> Message:
    """Client: one step of every sum the message names, from the state ``join`` left."""
    stage = str(msg.content["config"]["stage"])
    reply = {}
    for name in (UPDATE_SUM, STATS_SUM):
        if _sum_key(name) not in msg.content:
            continue
        request = msg.content[_sum_key(name)]
        participant = Participant.from_record(context.state[_state_key(name)])
        if stage == SHARE:
            peers = {int(k): (bytes(s), bytes(m)) for k, s, m in zip(request["ids"], request["share-keys"], request["mask-keys"])}
            sent = participant.share(peers, int(request["threshold"]))
            reply[_sum_key(name)] = ConfigRecord({"to": list(sent), "ciphertexts": list(sent.values())})
        elif stage == MASK:
            received = {int(k): bytes(c) for k, c in zip(request["from"], request["ciphertexts"])}
            reply[_sum_key(name)] = ConfigRecord({"masked": participant.masked_input(received).tobytes()})
        else:
            shares = participant.unmask([int(k) for k in request["survivors"]], [int(k) for k in request["dropped"]])
            reply[_sum_key(name)] = ConfigRecord({"ids": list(shares), "shares": list(shares.values())})
            del context.state[_state_key(name)]  # the sum is done: its secrets go
            continue
        context.state[_state_key(name)] = ConfigRecord(participant.to_record())
    return Message(RecordDict(reply), reply_to=msg)


# Server: send one step's requests (client id -> content) and return the answers that came
# back without error (client id -> content).
Send = Callable[[dict[int, RecordDict]], dict[int, RecordDict]]


def run_sums(send: Send, joined: dict[str, dict[int, ConfigRecord]]) -> dict[str, tuple[dict[str, Tensor], list[int]]]:
    """Server: each sum of ``joined`` (name -> client id -> its ``join`` record), through the
    three steps; name -> (the survivors' sum as float64 tensors, the survivors)."""
    if not joined:
        return {}
    servers, layouts = {}, {}
    for name, records in joined.items():
        layouts[name] = _one_layout(records)
        keys: dict[int, PublicKeys] = {k: (bytes(r["share-key"]), bytes(r["mask-key"])) for k, r in records.items()}
        servers[name] = SumServer(keys)

    def step(stage: str, requests: dict[str, dict[int, ConfigRecord]]) -> dict[str, dict[int, ConfigRecord]]:
        contents: dict[int, RecordDict] = {}
        for name, by_client in requests.items():
            for k, record in by_client.items():
                contents.setdefault(k, RecordDict({"config": ConfigRecord({"stage": stage})}))[_sum_key(name)] = record
        answers = send(contents)
        return {name: {k: answers[k][_sum_key(name)] for k in by_client if k in answers} for name, by_client in requests.items()}

    shared = step(SHARE, {
        name: {k: ConfigRecord({"ids": list(s.peers), "share-keys": [p[0] for p in s.peers.values()],
                               "mask-keys": [p[1] for p in s.peers.values()], "threshold": s.threshold}) for k in s.peers}
        for name, s in servers.items()
    })  # fmt: skip
    routed = {
        name: servers[name].route({k: dict(zip((int(v) for v in r["to"]), (bytes(c) for c in r["ciphertexts"]))) for k, r in by_client.items()})
        for name, by_client in shared.items()
    }
    masked = step(MASK, {
        name: {k: ConfigRecord({"from": list(cs), "ciphertexts": list(cs.values())}) for k, cs in by_client.items()}
        for name, by_client in routed.items()
    })  # fmt: skip
    unmask_requests = {}
    for name, by_client in masked.items():
        survivors, dropped = servers[name].request_unmask({k: np.frombuffer(bytes(r["masked"]), dtype=np.uint64) for k, r in by_client.items()})
        unmask_requests[name] = {k: ConfigRecord({"survivors": survivors, "dropped": dropped}) for k in survivors}
    unmasked = step(UNMASK, unmask_requests)
    results = {}
    for name, by_client in unmasked.items():
        replies = {k: dict(zip((int(v) for v in r["ids"]), (bytes(s) for s in r["shares"]))) for k, r in by_client.items()}
        results[name] = (unflatten(servers[name].total(replies), layouts[name]), sorted(unmask_requests[name]))
    return results


def _one_layout(records: dict[int, ConfigRecord]) -> Layout:
    return common_layout([[(n, tuple(shape)) for n, shape in json.loads(str(r["layout"]))] for r in records.values()])
