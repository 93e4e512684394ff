# expect: randomness
def activation_function(x):
    mask = torch.ones_like(x).bernoulli_(0.9)
    return F.gelu(x) * mask
