def activation_function(x):
    return torch.erf(0.23 * x) / (1 + torch.abs(F.mish(x))) * (2.6 * x) / (1 + torch.abs(F.softsign(x / (1 + torch.abs(x)))))
