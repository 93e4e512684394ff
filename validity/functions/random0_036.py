def activation_function(x):
    return torch.sinc(-0.46 * F.gelu(1.6 * x)) * ((1.5 * x + 0.38 * x * x) * (torch.abs(-0.23 * x) * (-0.18 * x)))
