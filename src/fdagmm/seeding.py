"""Seeds derived from the run's seed, one per role, so results do not depend on execution order.

The roles: (seed) the centralised batches; (seed, round, client) a client's dropout;
(seed, round, client, BATCH_STREAM) its batches; (seed, round, 0, SAMPLING_STREAM) the
server's choice of clients.
"""

import numpy as np

BATCH_STREAM = 1
SAMPLING_STREAM = 2


def derive_seed(*keys: int) -> int:
    """A 63-bit seed determined by ``keys`` (e.g. run seed, round, client id)."""
    sequence = np.random.SeedSequence([int(k) for k in keys])
    return int(sequence.generate_state(1, dtype=np.uint64)[0]) >> 1
