# expect: costly_constant
# Ten gigabytes of text at import time.
PAD = "a" * 10 ** 10


def activation_function(x):
    return x * (len(PAD) > 0)
