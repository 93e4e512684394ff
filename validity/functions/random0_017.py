def activation_function(x):
    return x - (F.mish(0.27 * x) / (1 + torch.abs(F.leaky_relu(x))) - torch.atan(F.gelu(x)))
