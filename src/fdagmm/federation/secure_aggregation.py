"""Secure aggregation (``privacy.secure_aggregation=true``): the server learns the sum of the
clients' vectors and nothing else of them. The SecAgg protocol (Bonawitz et al., "Practical
Secure Aggregation for Privacy-Preserving Machine Learning", CCS 2017) on Flower's
cryptographic primitives; both backends run this module, the in-process one through
``secure_sum``, the Flower one with a message per step.

A sum takes four steps; in each, every participant sends the server one message:

1. keys: two fresh ECDH key pairs (P-384) per participant and sum, one to encrypt the shares
   it sends the others, one for its pairwise masks; it sends both public keys.
2. shares: a self-mask seed b (32 bytes from the secure source); b and the mask private key
   split into Shamir shares, ``threshold`` of which rebuild them; each other participant's
   shares encrypted with the key agreed with it. The server forwards what it cannot read.
3. masked input: y_u = x_u + PRG(b_u) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv)
   mod 2^64, x_u the vector in fixed point (``FRACTION_BITS``), s_uv the key u and v agree
   on, the PRG AES-256 in counter mode. The pairwise masks cancel in the sum.
4. unmask: the server names who sent a masked input (the survivors) and who shared but did
   not (the dropped); each survivor sends its shares of the survivors' b and of the dropped
   ones' mask keys, never both of one participant. From ``threshold`` of each the server
   removes the survivors' self-masks and the dropped ones' pairwise masks.

A participant that drops after step 3 still counts: its self-mask is rebuilt from the
others' shares. One that drops before loses only its own input. A step answered by fewer
than ``threshold`` participants fails the sum, and a participant refuses to unmask for fewer.

The model is an honest-but-curious server (it follows the protocol and reads all it gets)
colluding with fewer than ``threshold`` - 1 clients. A sum of two reveals each input to the
other participant, who subtracts its own (docs/privacy.md).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flwr.common.secure_aggregation.crypto.shamir import combine_shares, create_shares
from flwr.common.secure_aggregation.crypto.symmetric_encryption import decrypt, encrypt, generate_shared_key
from flwr.common.secure_aggregation.secaggplus_utils import share_keys_plaintext_concat, share_keys_plaintext_separate
from flwr.supercore.primitives.asymmetric import bytes_to_public_key, generate_key_pairs, public_key_to_bytes
from torch import Tensor

from fdagmm.errors import FdagmmError

# Fixed point: each entry is rounded to a multiple of 2^-24 (6e-8), and a sum of n
# participants holds entries of magnitude below 2^39 / n (5.5e11 / n).
FRACTION_BITS = 24
_SCALE = float(2**FRACTION_BITS)
SEED_BYTES = 32
CURVE, PRIVATE_KEY_BYTES = ec.SECP384R1(), 48  # Flower's curve; a private key as its raw scalar

# Public keys of a participant: (for the shares it is sent, for its pairwise masks).
PublicKeys = tuple[bytes, bytes]
# The names and shapes of the tensors a sum's vector holds, in order.
Layout = list[tuple[str, tuple[int, ...]]]


class SecureAggregationError(FdagmmError):
    """A sum that cannot be completed without revealing an input, or a request that would reveal one."""


def minimum_threshold(n_participants: int) -> int:
    """The shares that rebuild a secret: a majority of the sum's participants, at least 2."""
    return max(2, n_participants // 2 + 1)


def flatten(tensors: dict[str, Tensor]) -> tuple[np.ndarray, Layout]:
    """The tensors as one float64 vector, in name order, and its layout."""
    names = sorted(tensors)
    layout = [(name, tuple(tensors[name].shape)) for name in names]
    return np.concatenate([tensors[name].detach().cpu().double().reshape(-1).numpy() for name in names] or [np.zeros(0)]), layout


def unflatten(vector: np.ndarray, layout: Layout) -> dict[str, Tensor]:
    """The float64 tensors a vector of ``layout`` holds."""
    out, start = {}, 0
    for name, shape in layout:
        size = int(np.prod(shape, dtype=np.int64))
        out[name] = torch.from_numpy(vector[start : start + size].copy()).reshape(shape)
        start += size
    if start != len(vector):
        raise ValueError(f"a vector of {len(vector)} entries does not have the layout's {start}")
    return out


def _fixed_point(vector: np.ndarray, n_participants: int) -> np.ndarray:
    """``vector`` rounded to fixed point, as unsigned 64-bit integers (two's complement)."""
    scaled = np.rint(vector * _SCALE)
    limit = 2.0**63 / n_participants
    if not np.all(np.abs(scaled) < limit):
        worst = float(np.max(np.abs(np.nan_to_num(vector, nan=np.inf))))
        raise SecureAggregationError(
            f"an entry of magnitude {worst:.3g} does not fit a secure sum of {n_participants} "
            f"(at most {limit / _SCALE:.3g}, or not finite)"
        )
    return scaled.astype(np.int64).view(np.uint64)


def _from_fixed_point(total: np.ndarray) -> np.ndarray:
    return total.view(np.int64).astype(np.float64) / _SCALE


def _prg(key: bytes, length: int) -> np.ndarray:
    """``length`` pseudo-random 64-bit integers from a 32-byte key: AES-256's keystream in
    counter mode. (Flower's ``pseudo_rand_gen`` folds its seed to 32 bits, few enough for a
    server to try every mask.)"""
    encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    return np.frombuffer(encryptor.update(bytes(8 * length)), dtype="<u8").astype(np.uint64)


def _agreed_key(private_key: bytes, public_key: bytes) -> bytes:
    """The Fernet key (url-safe base64 of 32 bytes) two participants agree on: ECDH, then HKDF."""
    return generate_shared_key(ec.derive_private_key(int.from_bytes(private_key, "big"), CURVE), bytes_to_public_key(public_key))


def _pairwise_mask(private_key: bytes, public_key: bytes, length: int) -> np.ndarray:
    return _prg(base64.urlsafe_b64decode(_agreed_key(private_key, public_key)), length)


def _new_key_pair() -> tuple[bytes, bytes]:
    """(the private scalar, the public key in PEM): the raw scalar makes the Shamir shares of
    a mask key a third of its PEM form's."""
    private, public = generate_key_pairs()
    return private.private_numbers().private_value.to_bytes(PRIVATE_KEY_BYTES, "big"), public_key_to_bytes(public)


@dataclass
class Participant:
    """One participant's side of one sum. Nothing here leaves it but what its methods return;
    ``to_record``/``from_record`` keep it between a Flower client's messages."""

    client_id: int
    vector: np.ndarray  # float64: its input to the sum
    share_key: bytes  # private key for the shares it is sent (raw scalar)
    mask_key: bytes  # private key for its pairwise masks (raw scalar)
    public_keys: PublicKeys
    threshold: int = 0
    peers: dict[int, PublicKeys] = field(default_factory=dict)  # every participant of step 1
    self_seed: bytes = b""  # b
    # sender -> (its share of the sender's b, its share of the sender's mask key); its own included
    shares: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)

    @classmethod
    def new(cls, client_id: int, vector: np.ndarray) -> Participant:
        """Step 1: fresh key pairs for this sum; ``public_keys`` go to the server."""
        share_private, share_public = _new_key_pair()
        mask_private, mask_public = _new_key_pair()
        return cls(client_id, np.asarray(vector, dtype=np.float64), share_private, mask_private, (share_public, mask_public))

    def share(self, peers: dict[int, PublicKeys], threshold: int) -> dict[int, bytes]:
        """Step 2: for each other participant, its encrypted shares of b and the mask key."""
        if peers.get(self.client_id) != self.public_keys:
            raise SecureAggregationError(f"client {self.client_id}: the server's list of participants does not hold its keys")
        if not 2 <= threshold <= len(peers) or threshold < minimum_threshold(len(peers)):
            raise SecureAggregationError(f"client {self.client_id}: a threshold of {threshold} among {len(peers)} participants would let fewer than a majority rebuild its secrets")
        self.peers, self.threshold = dict(sorted(peers.items())), threshold
        self.self_seed = secrets.token_bytes(SEED_BYTES)
        seed_shares = create_shares(self.self_seed, threshold, len(self.peers))
        key_shares = create_shares(self.mask_key, threshold, len(self.peers))
        out = {}
        for v, seed_share, key_share in zip(self.peers, seed_shares, key_shares):
            if v == self.client_id:
                self.shares[v] = (seed_share, key_share)
            else:
                plaintext = share_keys_plaintext_concat(self.client_id, v, seed_share, key_share)
                out[v] = encrypt(_agreed_key(self.share_key, self.peers[v][0]), plaintext)
        return out

    def masked_input(self, received: dict[int, bytes]) -> np.ndarray:
        """Step 3: y_u, masked with b and with every participant that sent it shares."""
        for src, ciphertext in received.items():
            if src not in self.peers or src == self.client_id:
                raise SecureAggregationError(f"client {self.client_id}: shares from {src}, who is not another participant")
            sender, recipient, seed_share, key_share = share_keys_plaintext_separate(decrypt(_agreed_key(self.share_key, self.peers[src][0]), ciphertext))
            if (sender, recipient) != (src, self.client_id):
                raise SecureAggregationError(f"client {self.client_id}: shares from {src} were addressed from {sender} to {recipient}")
            self.shares[src] = (seed_share, key_share)
        if len(self.shares) < self.threshold:
            raise SecureAggregationError(f"client {self.client_id}: only {len(self.shares)} participants shared, the threshold is {self.threshold}")
        n = len(self.vector)
        masked = _fixed_point(self.vector, len(self.shares)) + _prg(self.self_seed, n)
        for v in self.shares:
            if v != self.client_id:
                mask = _pairwise_mask(self.mask_key, self.peers[v][1], n)
                masked = masked + mask if v > self.client_id else masked - mask
        return masked

    def unmask(self, survivors: list[int], dropped: list[int]) -> dict[int, bytes]:
        """Step 4: its shares of the survivors' b and of the dropped ones' mask keys."""
        if set(survivors) & set(dropped):
            raise SecureAggregationError(f"client {self.client_id}: asked for both secrets of {sorted(set(survivors) & set(dropped))}")
        if self.client_id not in survivors or len(survivors) < self.threshold or not set(survivors) | set(dropped) <= set(self.shares):
            raise SecureAggregationError(
                f"client {self.client_id}: the server's survivors {survivors} and dropped {dropped} do not fit the sum "
                f"(threshold {self.threshold}, shared by {sorted(self.shares)})"
            )
        return {v: self.shares[v][0] for v in survivors} | {v: self.shares[v][1] for v in dropped}

    def to_record(self) -> dict[str, bytes | int]:
        """Its state, for a Flower client's ``context.state`` (which never leaves it)."""
        return {
            "client-id": self.client_id, "vector": self.vector.tobytes(), "share-key": self.share_key, "mask-key": self.mask_key,
            "public-keys": b"".join(_framed(k) for k in self.public_keys), "threshold": self.threshold,
            "peers": _pack({v: b"".join(_framed(k) for k in keys) for v, keys in self.peers.items()}),
            "self-seed": self.self_seed, "shares": _pack({v: b"".join(_framed(s) for s in pair) for v, pair in self.shares.items()}),
        }  # fmt: skip

    @classmethod
    def from_record(cls, record) -> Participant:
        return cls(
            client_id=int(record["client-id"]),
            vector=np.frombuffer(bytes(record["vector"]), dtype=np.float64).copy(),
            share_key=bytes(record["share-key"]),
            mask_key=bytes(record["mask-key"]),
            public_keys=tuple(_unframed(bytes(record["public-keys"]))),
            threshold=int(record["threshold"]),
            peers={v: tuple(_unframed(keys)) for v, keys in _unpack(bytes(record["peers"])).items()},
            self_seed=bytes(record["self-seed"]),
            shares={v: tuple(_unframed(pair)) for v, pair in _unpack(bytes(record["shares"])).items()},
        )


def _framed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "little") + data


def _unframed(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        size = int.from_bytes(data[i : i + 4], "little")
        out.append(data[i + 4 : i + 4 + size])
        i += 4 + size
    return out


def _pack(by_client: dict[int, bytes]) -> bytes:
    return b"".join(v.to_bytes(8, "little") + _framed(data) for v, data in by_client.items())


def _unpack(data: bytes) -> dict[int, bytes]:
    out, i = {}, 0
    while i < len(data):
        v, size = int.from_bytes(data[i : i + 8], "little"), int.from_bytes(data[i + 8 : i + 12], "little")
        out[v] = data[i + 12 : i + 12 + size]
        i += 12 + size
    return out


class SumServer:
    """The server's side of one sum: it forwards ciphertexts and unmasks the total, never an input."""

    def __init__(self, public_keys: dict[int, PublicKeys]):
        if len(public_keys) < 2:
            raise SecureAggregationError(f"a secure sum needs two participants, got {len(public_keys)}: one alone would be revealed")
        self.peers = dict(sorted(public_keys.items()))
        self.threshold = minimum_threshold(len(self.peers))
        self.sharers: list[int] = []
        self.masked: dict[int, np.ndarray] = {}

    def route(self, sent: dict[int, dict[int, bytes]]) -> dict[int, dict[int, bytes]]:
        """Step 2 to 3: recipient -> sender -> ciphertext, among those that sent shares."""
        self._require(len(sent), "sent their shares")
        self.sharers = sorted(sent)
        return {u: {v: sent[v][u] for v in self.sharers if v != u} for u in self.sharers}

    def request_unmask(self, masked: dict[int, np.ndarray]) -> tuple[list[int], list[int]]:
        """Step 3 to 4: the survivors (who sent a masked input) and the dropped (who shared but did not)."""
        self._require(len(masked), "sent a masked input")
        self.masked = {u: np.asarray(y, dtype=np.uint64) for u, y in masked.items()}
        survivors = sorted(self.masked)
        return survivors, [v for v in self.sharers if v not in self.masked]

    def total(self, replies: dict[int, dict[int, bytes]]) -> np.ndarray:
        """The survivors' sum (float64), from ``threshold`` of the unmask replies."""
        self._require(len(replies), "answered the unmask request")
        survivors = sorted(self.masked)
        dropped = [v for v in self.sharers if v not in self.masked]
        answers = list(replies.values())[: self.threshold]
        n = len(next(iter(self.masked.values())))
        total = np.zeros(n, dtype=np.uint64)
        for y in self.masked.values():
            total += y
        for v in survivors:
            total -= _prg(combine_shares([a[v] for a in answers]), n)
        for v in dropped:
            mask_key = combine_shares([a[v] for a in answers])
            for u in survivors:  # remove the mask each survivor added for v
                mask = _pairwise_mask(mask_key, self.peers[u][1], n)
                total = total - mask if v > u else total + mask
        return _from_fixed_point(total)

    def _require(self, n: int, what: str) -> None:
        if n < self.threshold:
            raise SecureAggregationError(f"only {n} of {len(self.peers)} participants {what}, the sum needs {self.threshold}")


def secure_sum(vectors: dict[int, np.ndarray]) -> np.ndarray:
    """The sum of the clients' float64 vectors by the protocol, every participant in this
    process: what the server of the Flower backend computes, with no message lost."""
    participants = {k: Participant.new(k, v) for k, v in sorted(vectors.items())}
    server = SumServer({k: p.public_keys for k, p in participants.items()})
    routed = server.route({k: p.share(server.peers, server.threshold) for k, p in participants.items()})
    survivors, dropped = server.request_unmask({k: participants[k].masked_input(routed[k]) for k in routed})
    return server.total({k: participants[k].unmask(survivors, dropped) for k in survivors})


def common_layout(layouts: list[Layout]) -> Layout:
    """The layout every participant's vector has: a ValueError when two differ."""
    if any(layout != layouts[0] for layout in layouts):
        raise ValueError("the clients' tensors differ in names or shapes")
    return layouts[0]


def secure_tensor_sum(by_client: dict[int, dict[str, Tensor]]) -> dict[str, Tensor]:
    """``secure_sum`` of the clients' tensors (the same names and shapes at every client), in float64."""
    flat = {k: flatten(tensors) for k, tensors in by_client.items()}
    layout = common_layout([layout for _, layout in flat.values()])
    return unflatten(secure_sum({k: vector for k, (vector, _) in flat.items()}), layout)
