# expect: dunder
def activation_function(x):
    g = (lambda: 0).__globals__
    return x
