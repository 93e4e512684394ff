def activation_function(x):
    return torch.relu(-1.6 * torch.sin(-0.132 * x))
