def activation_function(x):
    return x + torch.sinc(x)
