# expect: costly_constant
smooth = lambda z, pad="-" * 10 ** 11: F.softplus(z)


def activation_function(x):
    return smooth(x)
