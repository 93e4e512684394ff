def activation_function(x):
    return F.softsign(1.8 * (F.mish(0.39 * x) + x) * F.silu(x))
