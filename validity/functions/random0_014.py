def activation_function(x):
    return torch.cos(x + (x + 0.3) * (x + 2 * x))
