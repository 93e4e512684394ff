def activation_function(x):
    return F.gelu(x + x + (1.5 * x - x) + F.softsign(x))
