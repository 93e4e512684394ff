def activation_function(x):
    return torch.sigmoid(0.405 * x)
