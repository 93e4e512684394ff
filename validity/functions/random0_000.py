def activation_function(x):
    return 2.3 * x - F.leaky_relu(F.softplus(F.mish(x)))
