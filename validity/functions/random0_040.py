def activation_function(x):
    return torch.sin(x) * F.elu(x) / (1 + torch.abs(torch.sigmoid(x) - torch.tanh(x))) / (1 + torch.abs(torch.sin(0.68 * x * (1.3 * x - x))))
