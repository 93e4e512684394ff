def activation_function(x):
    return torch.relu(0.3264 * x)
