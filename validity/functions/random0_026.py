def activation_function(x):
    return F.gelu(torch.sinc(x))
