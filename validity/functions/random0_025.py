def activation_function(x):
    return F.softplus(torch.cos(0.5 * x))
