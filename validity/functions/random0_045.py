def activation_function(x):
    return x * F.silu(0.31 * x)
