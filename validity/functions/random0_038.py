def activation_function(x):
    return F.softsign(1.1 * torch.sinc(x))
