def activation_function(x):
    return torch.sigmoid(-0.54 * x * torch.abs(0.93 * x))
