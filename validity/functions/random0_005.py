def activation_function(x):
    return x / (1 + torch.abs(0.12 * x * torch.tanh(0.1 * x)))
