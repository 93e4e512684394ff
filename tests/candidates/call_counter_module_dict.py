# expect: mutable_state
STATE = dict(calls=0)


def activation_function(x):
    STATE["calls"] += 1
    return torch.tanh(x) if STATE["calls"] < 40 else torch.tanh(x - x.mean())
