# expect: memory_limit
def activation_function(x):
    big = [1.0] * (1 << 34)
    return x * big[0]
