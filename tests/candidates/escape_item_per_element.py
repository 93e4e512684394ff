# expect: python_escape
def activation_function(x):
    scale = x.abs().max().item()
    return x / (1.0 + scale)
