# expect: forbidden_builtin
def activation_function(x):
    breakpoint()
    return x
