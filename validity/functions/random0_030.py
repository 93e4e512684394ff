def activation_function(x):
    return F.silu(x)
