def activation_function(x):
    return (F.softsign(1.5 * x + 0.059 * torch.sin(0.63 * x)) + 0.2 * torch.relu(1.62 * x)) * torch.sigmoid(2.8 * x) + 0.19 * torch.tanh(x)