# expect: randomness
def activation_function(x):
    noise = torch.zeros_like(x).normal_(0.0, 0.01)
    return torch.tanh(x) + noise
