def activation_function(x):
    return (x * (0.46 * x) * (-2 * x - 0.31) - x) * F.elu(x + 0.86 + F.softplus(0.71 * x))
