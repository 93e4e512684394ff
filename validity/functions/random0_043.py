def activation_function(x):
    return F.mish(-1.6 * (F.mish(F.gelu(x)) - 2 * x * F.elu(x)))
