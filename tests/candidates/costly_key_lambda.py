# expect: costly_constant
# max(..., key=...) would call the lambda while the program loads.
PICK = max((1, 2), key=lambda v: 9 ** 9 ** 9 ** 9)


def activation_function(x):
    return x * PICK
