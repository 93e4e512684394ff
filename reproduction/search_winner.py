def activation_function(x):
    return F.mish(torch.relu(x)) + 0.2 * x / (1 + 4.0 * x * x)
