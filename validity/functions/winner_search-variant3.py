def activation_function(x):
    return F.gelu(x, approximate='tanh') + 0.142 * torch.sin(x)