def activation_function(x):
    return F.mish(F.silu(x))
