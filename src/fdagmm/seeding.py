"""Seeds derived from the run's seed, one per role, so results do not depend on execution order."""

import numpy as np


def derive_seed(*keys: int) -> int:
    """A 63-bit seed determined by ``keys`` (e.g. run seed, round, client id)."""
    sequence = np.random.SeedSequence([int(k) for k in keys])
    return int(sequence.generate_state(1, dtype=np.uint64)[0]) >> 1
