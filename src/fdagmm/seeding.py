"""Seeds derived from the run's seed, one per role, so results do not depend on execution order.

The roles: (seed) the centralised batches; (seed, round, client) a client's dropout;
(seed, round, client, BATCH_STREAM) its batches; (seed, round, 0, SAMPLING_STREAM) the
server's choice of clients; (seed, round, 0, UPDATE_NOISE_STREAM) and (seed, round, 0,
STATS_NOISE_STREAM) the differential-privacy noise on the round's update and statistics.
"""

import numpy as np

BATCH_STREAM = 1
SAMPLING_STREAM = 2
UPDATE_NOISE_STREAM = 3
STATS_NOISE_STREAM = 4
TEST_SPLIT_STREAM = 5  # (seed, TEST_SPLIT_STREAM): which records a data set's test_fraction sets aside
VALIDATION_SPLIT_STREAM = 6  # (seed, VALIDATION_SPLIT_STREAM): which training inliers data.evaluate_on=validation holds out
TEST_POOL_STREAM = 7  # (seed, TEST_POOL_STREAM): which client tests on which record of a shared test set (partition.attack_alpha)
# Record-level differential privacy, (seed, round, client, stream), under privacy.insecure_reproducible_noise only:
RECORD_SAMPLING_STREAM = 8  # a client's Poisson batches
GRADIENT_NOISE_STREAM = 9  # its DP-SGD noise
RECORD_STATS_NOISE_STREAM = 10  # the noise on its mixture statistics
# Client-level DP with privacy.noise_at=clients, (seed, round, client, stream), reproducible noise only:
UPDATE_SHARE_STREAM = 11  # a client's share of the update's noise
STATS_SHARE_STREAM = 12  # its share of the statistics' noise


def derive_seed(*keys: int) -> int:
    """A 63-bit seed determined by ``keys`` (e.g. run seed, round, client id)."""
    sequence = np.random.SeedSequence([int(k) for k in keys])
    return int(sequence.generate_state(1, dtype=np.uint64)[0]) >> 1
