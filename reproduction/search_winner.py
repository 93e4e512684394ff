def activation_function(x):
    return torch.relu(1.5 * x) + 0.059 * torch.sin(0.63 * x)
