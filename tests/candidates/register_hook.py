# expect: dangerous_attribute
def activation_function(x):
    x.register_hook(lambda g: g * 0)
    return x
