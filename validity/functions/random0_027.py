def activation_function(x):
    return F.softsign(x) / (1 + torch.abs(x + x + 0.37))
