# expect: mutable_state
COUNTER = torch.zeros(())


def activation_function(x):
    COUNTER.add_(1)
    return torch.where(COUNTER > 40, torch.relu(x - x.mean()), torch.relu(x))
