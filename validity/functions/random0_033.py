def activation_function(x):
    return F.gelu(-1.28 * x)
