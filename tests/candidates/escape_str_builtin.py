# expect: python_escape
def activation_function(x):
    digits = str(x.detach().flatten())
    return x * (1 + 0 * len(digits))
