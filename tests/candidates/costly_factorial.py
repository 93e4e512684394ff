# expect: costly_constant
# math functions whose cost grows with their argument: factorial(10**8) takes minutes and gigabytes.
BIG = math.factorial(10 ** 8)


def activation_function(x):
    return torch.tanh(x) * (1 + 0 * (BIG % 7))
