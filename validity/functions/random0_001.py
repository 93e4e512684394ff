def activation_function(x):
    return F.leaky_relu(0.016 * x * (1.7 * x * (0.12 * x))) + 3 * x
