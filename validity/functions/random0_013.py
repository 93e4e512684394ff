def activation_function(x):
    return x - (F.silu(x - 1.3) + 1.5 * x)
