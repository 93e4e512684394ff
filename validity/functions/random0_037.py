def activation_function(x):
    return torch.tanh(0.65 * (x / (1 + torch.abs(x))))
