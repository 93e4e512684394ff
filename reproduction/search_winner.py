def activation_function(x):
    return F.mish(torch.relu(1.57 * x)) + 0.2 * x / (1 + 5 * x * x)
