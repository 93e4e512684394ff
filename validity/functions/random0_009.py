def activation_function(x):
    return x - F.mish(0.67 * x)
