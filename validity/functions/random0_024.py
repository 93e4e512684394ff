def activation_function(x):
    return F.mish(1.2 * x * x)
