def activation_function(x):
    return x * (-2 * x)
