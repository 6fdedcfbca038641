import random

import numpy as np
import torch

from sigid.training.seeding import cuda_devices, own_random_streams


def test_draws_inside_leave_the_callers_sequence_as_if_they_had_not_happened():
    def draw() -> tuple:
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    for seed in (0, 1):
        random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
        expected = draw()
        random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
        with own_random_streams([]):
            inside = draw()
            draw()
        assert draw() == expected and inside == expected  # the body drew the same, from a copy


def test_the_cuda_generators_forked_are_those_of_the_device_in_use():
    assert cuda_devices(torch.device("cpu")) == []
    assert cuda_devices(torch.device("cuda", 1)) == [1]
    assert cuda_devices(torch.device("cuda")) == [0]
