# expect: costly_constant
WEIGHT = math.comb(10 ** 7, 5 * 10 ** 6) % 3


def activation_function(x):
    return F.gelu(x) + 0.0 * WEIGHT
