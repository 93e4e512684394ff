# expect: randomness
def activation_function(x):
    jitter = x.detach().clone().uniform_(-0.1, 0.1)
    return F.silu(x + jitter)
